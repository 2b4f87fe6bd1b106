import Foundation
import RegistryProtocol
import RegistryText

/// The linkage input profile `anonreg-linkage-v1` (docs/PROTOCOL.md §Linkage, "Input profile"):
/// the one identity string every clinic builds from a person's family name, given name and
/// birth date before the OPRF, so that the spellings a register uses for one person agree.
///
/// clients/python/anonreg_client/linkage.py implements the same rules; the shared table
/// docs/linkage-profile-v1.json checks both. Any change to these rules is a new profile version,
/// and so a new linkage epoch (docs/CRYPTO.md §Linkage epochs).
public enum LinkageProfile {
    public static let version = "anonreg-linkage-v1"

    /// Why an identity was refused. Never repeats the identity's characters.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case fieldCount(Int)
        case unsupportedCharacter(field: String)
        case emptyName(field: String)
        case invalidDate

        /// The problem's name, as docs/linkage-profile-v1.json and the Python client give it.
        public var code: String {
            switch self {
            case .fieldCount: "field_count"
            case .unsupportedCharacter: "unsupported_character"
            case .emptyName: "empty_name"
            case .invalidDate: "invalid_date"
            }
        }

        public var description: String { text(.en) }

        /// The problem in `language` (the `linkage.*` messages of the catalogues), with its code.
        public func text(_ language: Language) -> String {
            "\(message(language)) [\(code)]"
        }

        func message(_ language: Language) -> String {
            switch self {
            case .fieldCount(let n): Catalogue.count("linkage.fieldCount", n, language)
            case .unsupportedCharacter(let field): Catalogue.text("linkage.unsupportedCharacter.\(Self.fieldKey(field))", language)
            case .emptyName(let field): Catalogue.text("linkage.emptyName.\(Self.fieldKey(field))", language)
            case .invalidDate: Catalogue.text("linkage.invalidDate", language)
            }
        }

        /// `family name` → `family`, `given name` → `given` (the fields `fold` is called for).
        static func fieldKey(_ field: String) -> String {
            field.split(separator: " ").first.map(String.init) ?? field
        }
    }

    /// The identity string for one person: `anonreg-linkage-v1|FAMILY|GIVEN|YYYY-MM-DD`. The
    /// patronymic is accepted and left out, so that records with and without it agree.
    public static func identity(family: String, given: String, patronymic: String? = nil, birthDate: String) throws(Problem) -> String {
        let f = try fold(family, field: "family name")
        let g = try fold(given, field: "given name")
        let d = try date(birthDate)
        return "\(version)|\(f)|\(g)|\(d)"
    }

    /// One line of `anonreg linkage --fields` and `--batch`: `family|given|birth date` or
    /// `family|given|patronymic|birth date`.
    public static func identity(line: String) throws(Problem) -> String {
        // Split on the scalar U+007C (not on grapheme clusters, which could join "|" to a mark).
        let parts = line.unicodeScalars.split(separator: "|", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
        switch parts.count {
        case 3: return try identity(family: parts[0], given: parts[1], birthDate: parts[2])
        case 4: return try identity(family: parts[0], given: parts[1], patronymic: parts[2], birthDate: parts[3])
        default: throw .fieldCount(parts.count)
        }
    }

    // MARK: - Names

    /// Folds a name to its profile form: the rules of docs/PROTOCOL.md §Linkage, steps 1 to 6.
    public static func fold(_ name: String, field: String) throws(Problem) -> String {
        // 1. Only the profile's repertoire is accepted.
        for scalar in name.unicodeScalars where !accepted(scalar.value) {
            throw .unsupportedCharacter(field: field)
        }
        // 2. ISO 9 letters with a caron spelt out, then NFKD; 3. combining marks U+0300–U+036F
        // dropped (ё→е, й→и, é→e).
        var premapped = ""
        for scalar in name.unicodeScalars {
            if let spelt = carons[scalar.value] { premapped += spelt } else { premapped.unicodeScalars.append(scalar) }
        }
        var letters = ""
        for scalar in premapped.decomposedStringWithCompatibilityMapping.unicodeScalars {
            let v = scalar.value
            if (0x300...0x36F).contains(v) || inputSeparators.contains(v) { continue }
            // 4. Lower case, then Cyrillic to Latin, then the Latin letters without a decomposition.
            let lower = lowercase(v)
            if let latin = cyrillic[lower] {
                letters += latin
            } else if let latin = specialLatin[lower] {
                letters += latin
            } else if (0x61...0x7A).contains(lower) {
                letters.unicodeScalars.append(Unicode.Scalar(lower)!)
            } else {
                throw .unsupportedCharacter(field: field)
            }
        }
        // 5. Spelling variants of transliteration folded, longest match first; 6. runs collapsed.
        let folded = collapse(rewrite(Array(letters.utf8)))
        guard !folded.isEmpty else { throw .emptyName(field: field) }
        return folded
    }

    /// Step 1's repertoire, checked before normalisation (every code point here has been assigned
    /// since Unicode 1.1, so NFKD gives the same result in every implementation).
    static func accepted(_ v: UInt32) -> Bool {
        switch v {
        case 0x41...0x5A, 0x61...0x7A: true  // Basic Latin letters
        case 0xC0...0xFF: v != 0xD7 && v != 0xF7  // Latin-1 letters
        case 0x100...0x17F: true  // Latin Extended-A
        case 0x300...0x36F: true  // combining diacritical marks
        case 0x401, 0x404, 0x406, 0x407, 0x40E, 0x410...0x44F, 0x451, 0x454, 0x456, 0x457, 0x45E, 0x490, 0x491: true  // Cyrillic
        case 0xFF21...0xFF3A, 0xFF41...0xFF5A: true  // fullwidth Latin letters
        default: inputSeparators.contains(v)
        }
    }

    /// Separators: removed wherever they are (so "Петров-Водкин", "Петров Водкин" and
    /// "ПетровВодкин" agree). Listed as typed, and as NFKD leaves them.
    static let inputSeparators: Set<UInt32> = [
        0x09, 0x20, 0x27, 0x2C, 0x2D, 0x2E, 0x60, 0xA0, 0xB4, 0xB7, 0x2B9, 0x2BA, 0x2BC,
        0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x200B,
        0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2018, 0x2019, 0x202F, 0x3000, 0xFF0D,
    ]

    /// ASCII and Cyrillic capitals to small letters; the other capitals left after NFKD are in
    /// `specialLatin`.
    static func lowercase(_ v: UInt32) -> UInt32 {
        switch v {
        case 0x41...0x5A, 0x410...0x42F: v + 0x20
        case 0x400...0x40F: v + 0x50
        case 0x490: 0x491
        default: v
        }
    }

    /// Step 2: scientific (ISO 9) transliteration letters, spelt out before NFKD would strip
    /// their carons.
    static let carons: [UInt32: String] = [
        0x10C: "ch", 0x10D: "ch", 0x15C: "shch", 0x15D: "shch", 0x160: "sh", 0x161: "sh", 0x17D: "zh", 0x17E: "zh",
    ]

    /// Step 4: Cyrillic to Latin, ICAO Doc 9303 (as in Russian passports since 2013), with
    /// є і ґ ў of Ukrainian and Belarusian. ё and й arrive as е and и (step 3).
    static let cyrillic: [UInt32: String] = [
        0x430: "a", 0x431: "b", 0x432: "v", 0x433: "g", 0x434: "d", 0x435: "e", 0x436: "zh", 0x437: "z",
        0x438: "i", 0x439: "i", 0x43A: "k", 0x43B: "l", 0x43C: "m", 0x43D: "n", 0x43E: "o", 0x43F: "p",
        0x440: "r", 0x441: "s", 0x442: "t", 0x443: "u", 0x444: "f", 0x445: "kh", 0x446: "ts", 0x447: "ch",
        0x448: "sh", 0x449: "shch", 0x44A: "ie", 0x44B: "y", 0x44C: "", 0x44D: "e", 0x44E: "iu", 0x44F: "ia",
        0x451: "e", 0x454: "ie", 0x456: "i", 0x457: "i", 0x45E: "u", 0x491: "g",
    ]

    /// Step 4: Latin letters that NFKD does not decompose.
    static let specialLatin: [UInt32: String] = [
        0xC6: "ae", 0xD0: "d", 0xD8: "o", 0xDE: "th", 0xDF: "ss", 0xE6: "ae", 0xF0: "d", 0xF8: "o", 0xFE: "th",
        0x110: "d", 0x111: "d", 0x126: "h", 0x127: "h", 0x131: "i", 0x138: "k", 0x141: "l", 0x142: "l",
        0x14A: "n", 0x14B: "n", 0x152: "oe", 0x153: "oe", 0x166: "t", 0x167: "t",
    ]

    /// Step 5: at each position the longest pattern that matches is replaced; text that no
    /// pattern matches is kept. One pass, left to right; replacements are not scanned again.
    static let rewrites: [(pattern: String, replacement: String)] = [
        ("shch", "shch"), ("sch", "shch"), ("shh", "shch"),
        ("sh", "sh"), ("zh", "zh"), ("ch", "ch"), ("kh", "kh"), ("ts", "ts"), ("cz", "ts"), ("ph", "f"), ("th", "t"),
        ("yu", "iu"), ("ju", "iu"), ("ya", "ia"), ("ja", "ia"), ("yo", "e"), ("jo", "e"), ("ye", "e"), ("je", "e"),
        ("h", "kh"), ("x", "ks"), ("w", "v"), ("c", "k"), ("y", "i"), ("j", "i"),
    ]
    static let rewriteTable: [[UInt8]: [UInt8]] = Dictionary(
        uniqueKeysWithValues: rewrites.map { (Array($0.pattern.utf8), Array($0.replacement.utf8)) })
    static let longestPattern = rewrites.map(\.pattern.utf8.count).max()!

    static func rewrite(_ s: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        outer: while i < s.count {
            for n in stride(from: min(longestPattern, s.count - i), through: 1, by: -1) {
                if let replacement = rewriteTable[Array(s[i..<i + n])] {
                    out += replacement
                    i += n
                    continue outer
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// Step 6: every run of one letter becomes one letter ("Филиппов" = "Филипов", "ii" = "i").
    static func collapse(_ s: [UInt8]) -> String {
        var out: [UInt8] = []
        for c in s where out.last != c { out.append(c) }
        return String(decoding: out, as: UTF8.self)
    }

    // MARK: - Birth date

    /// `YYYY-MM-DD` or `DD.MM.YYYY` (day and month may have one digit), a real Gregorian date,
    /// written back as `YYYY-MM-DD`. Spaces and tabs around it are ignored.
    public static func date(_ text: String) throws(Problem) -> String {
        let t = text.trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
        if let day = Day(t) { return day.description }
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, (1...2).contains(parts[0].count), (1...2).contains(parts[1].count), parts[2].count == 4,
            parts.allSatisfy({ $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }),
            let d = Int(parts[0]), let m = Int(parts[1]), let y = Int(parts[2]),
            let day = Day(year: y, month: m, day: d)
        else { throw .invalidDate }
        return day.description
    }
}
