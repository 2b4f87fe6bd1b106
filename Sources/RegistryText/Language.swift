/// A language anonreg speaks to people in: the `reason` texts, the `self` view, the CLI's human
/// output and the patient's card (docs/TRANSLATING.md). Machine fields and error codes are the
/// same in every language.
public enum Language: String, CaseIterable, Sendable, Hashable {
    case en
    case ru

    /// When nothing asks for another one.
    public static let fallback: Language = .en

    /// The language of a tag such as `ru`, `ru-RU`, `ru_RU.UTF-8` or `EN`: its primary subtag
    /// (RFC 5646 §2.2.1), case-insensitive. `C`, `POSIX` and unknown languages give nil.
    public init?(tag: String) {
        let primary = tag.split(whereSeparator: { $0 == "-" || $0 == "_" || $0 == "." || $0 == "@" }).first.map(String.init) ?? ""
        guard let language = Language(rawValue: primary.lowercased()) else { return nil }
        self = language
    }

    /// The language of the POSIX locale environment (XBD §8.2): `LC_ALL`, else `LC_MESSAGES`,
    /// else `LANG`, the first one set and not empty; English when that names no language anonreg
    /// has (including `C` and `POSIX`).
    public static func fromEnvironment(_ environment: [String: String]) -> Language {
        for name in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let value = environment[name], !value.isEmpty {
                return Language(tag: value) ?? fallback
            }
        }
        return fallback
    }

    /// The language an `Accept-Language` field value asks for (RFC 9110 §12.5.4, with the basic
    /// filtering of RFC 4647 §3.3.1): the anonreg language with the highest quality value, the
    /// earlier one on a tie; `*` stands for any language not named; `q=0` means "not this one".
    /// A missing, empty or unreadable field, or one that names no anonreg language, gives English.
    /// At most the first 32 ranges are read.
    public static func negotiate(acceptLanguage field: String?) -> Language {
        guard let field, !field.isEmpty else { return fallback }
        var quality: [Language: (q: Int, order: Int)] = [:]
        var wildcard: (q: Int, order: Int)? = nil
        for (order, element) in field.split(separator: ",", omittingEmptySubsequences: true).prefix(32).enumerated() {
            let parts = element.split(separator: ";")
            guard let range = parts.first?.trimmingCharacters(in: " \t"), !range.isEmpty else { continue }
            var q = 1000
            if parts.count > 1 {
                guard parts.count == 2, let parsed = Self.quality(parts[1]) else { continue }
                q = parsed
            }
            if range == "*" {
                if wildcard == nil { wildcard = (q, order) }
                continue
            }
            guard let language = Language(tag: range) else { continue }
            // The most specific range for a language decides (RFC 4647 §3.3.1 reads ranges as
            // prefixes); anonreg has one variant per language, so the first one named decides.
            if quality[language] == nil { quality[language] = (q, order) }
        }
        var best: (language: Language, q: Int, order: Int)? = nil
        for language in Language.allCases {
            guard let entry = quality[language] ?? wildcard, entry.q > 0 else { continue }
            if best == nil || entry.q > best!.q || (entry.q == best!.q && entry.order < best!.order) {
                best = (language, entry.q, entry.order)
            }
        }
        return best?.language ?? fallback
    }

    /// `q=0.8` → 800 (RFC 9110 §12.4.2: at most three decimals, 0 to 1).
    static func quality<S: StringProtocol>(_ parameter: S) -> Int? {
        let text = parameter.trimmingCharacters(in: " \t")
        guard text.hasPrefix("q=") || text.hasPrefix("Q=") else { return nil }
        let value = text.dropFirst(2)
        let pieces = value.split(separator: ".", omittingEmptySubsequences: false)
        guard pieces.count <= 2, let whole = pieces.first, whole == "0" || whole == "1" else { return nil }
        let fraction = pieces.count == 2 ? pieces[1] : ""
        guard fraction.count <= 3, fraction.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        let thousandths = Int(String(fraction) + String(repeating: "0", count: 3 - fraction.count)) ?? 0
        if whole == "1" { return thousandths == 0 ? 1000 : nil }
        return thousandths
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars = scalars.dropFirst() }
        while let last = scalars.last, set.contains(last) { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
