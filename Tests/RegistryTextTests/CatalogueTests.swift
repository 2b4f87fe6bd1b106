import RegistryProtocol
import Testing

@testable import RegistryText

/// The catalogue checks of docs/TRANSLATING.md: a translator's file is complete and consistent.
struct CatalogueTests {
    /// `days[one]` → `days`, for plural keys; nil for a plain key.
    static func pluralBase(_ key: String) -> String? {
        guard key.hasSuffix("]"), let open = key.lastIndex(of: "[") else { return nil }
        return String(key[..<open])
    }

    static func pluralForm(_ key: String) -> String? {
        guard key.hasSuffix("]"), let open = key.lastIndex(of: "[") else { return nil }
        return String(key[key.index(after: open)..<key.index(before: key.endIndex)])
    }

    /// Messages that lay out values rather than say something: a language picks which of the
    /// named values it shows (a date as 2026-11-02 or as 2 ноября 2026).
    static let formats: [String: Set<String>] = ["date.format": ["iso", "day", "month", "year"]]

    /// Plain keys as they are, plural keys by their base.
    static func messages(_ language: Language) -> Set<String> {
        Set(Catalogue.table(language).keys.map { pluralBase($0) ?? $0 })
    }

    @Test func everyLanguageHasACatalogue() {
        for language in Language.allCases {
            #expect(Catalogue.table(language).count > 50, "\(language) has no catalogue")
        }
    }

    @Test func everyKeyExistsInEveryLanguage() {
        let all = Language.allCases.reduce(into: Set<String>()) { $0.formUnion(Self.messages($1)) }
        for language in Language.allCases {
            let missing = all.subtracting(Self.messages(language)).sorted()
            #expect(missing.isEmpty, "\(language).catalogue lacks \(missing)")
        }
    }

    /// Each plural message has exactly the forms its language's rule produces (CLDR), and no
    /// plain message ends in a plural form's name by accident.
    @Test func pluralMessagesHaveEveryFormOfTheirLanguage() {
        for language in Language.allCases {
            let table = Catalogue.table(language)
            let bases = Set(table.keys.compactMap(Self.pluralBase))
            #expect(!bases.isEmpty)
            for base in bases {
                let forms = Set(table.keys.filter { Self.pluralBase($0) == base }.compactMap(Self.pluralForm))
                let needed = Set(language.pluralCategories.map(\.rawValue))
                #expect(needed.isSubset(of: forms), "\(language): \(base) lacks \(needed.subtracting(forms).sorted())")
                let allowed = needed.union(["other"])
                #expect(
                    forms.isSubset(of: allowed),
                    "\(language): \(base) has forms \(forms.subtracting(allowed).sorted()) its language does not use")
                #expect(table[base] == nil, "\(language): \(base) is both a plain and a plural message")
            }
        }
    }

    @Test func placeholdersMatchAcrossLanguages() {
        let english = Catalogue.table(.en)
        for language in Language.allCases where language != .en {
            let table = Catalogue.table(language)
            for (key, text) in table {
                // Plural forms are compared with the English forms of the same message.
                if let allowed = Self.formats[key] {
                    let used = Catalogue.placeholders(text)
                    #expect(!used.isEmpty && used.isSubset(of: allowed), "\(language): \(key) may use only \(allowed.sorted())")
                    continue
                }
                let reference =
                    english[key] ?? Self.pluralBase(key).flatMap { base in english["\(base)[other]"] ?? english["\(base)[one]"] }
                guard let reference else { continue }
                #expect(
                    Catalogue.placeholders(text) == Catalogue.placeholders(reference),
                    "\(language): \(key) has \(Catalogue.placeholders(text).sorted()), en has \(Catalogue.placeholders(reference).sorted())"
                )
            }
        }
        // Every form of a plural message names {n}.
        for language in Language.allCases {
            for (key, text) in Catalogue.table(language) where Self.pluralBase(key) != nil {
                #expect(Catalogue.placeholders(text).contains("n"), "\(language): \(key) does not show the number")
            }
        }
    }

    @Test(arguments: [
        (1, "1 день", "1 day"), (2, "2 дня", "2 days"), (5, "5 дней", "5 days"), (11, "11 дней", "11 days"),
        (21, "21 день", "21 days"), (22, "22 дня", "22 days"), (12, "12 дней", "12 days"), (111, "111 дней", "111 days"),
        (104, "104 дня", "104 days"), (1095, "1095 дней", "1095 days"), (0, "0 дней", "0 days"),
    ])
    func pluralFormsAreRight(n: Int, russian: String, english: String) {
        #expect(Catalogue.count("days", n, .ru) == russian)
        #expect(Catalogue.count("days", n, .en) == english)
    }

    /// Every plural message, not only `days`, takes the form its number needs.
    @Test(arguments: [
        (1, "(введено 1 поле)"), (2, "(введено 2 поля)"), (5, "(введено 5 полей)"), (11, "(введено 11 полей)"),
        (21, "(введено 21 поле)"), (22, "(введено 22 поля)"),
    ])
    func everyPluralMessageFollowsTheRule(n: Int, russian: String) {
        #expect(Catalogue.count("linkage.fieldCount", n, .ru).hasSuffix(russian))
        #expect(Catalogue.count("linkage.fieldCount", n, .en).hasSuffix(n == 1 ? "(1 field given)" : "(\(n) fields given)"))
    }

    @Test func russianPluralRuleFollowsCLDR() {
        for n in 0...1000 {
            let expected: PluralCategory =
                n % 10 == 1 && n % 100 != 11
                ? .one
                : (2...4).contains(n % 10) && !(12...14).contains(n % 100) ? .few : .many
            #expect(Language.ru.pluralCategory(n) == expected, "n = \(n)")
        }
        #expect(Language.en.pluralCategory(1) == .one)
        #expect(Language.en.pluralCategory(21) == .other)
    }

    @Test func placeholdersAreFilledAndTheRestIsKept() {
        #expect(Catalogue.fill("{a} and {b}", ["a": "x", "b": "y"]) == "x and y")
        #expect(Catalogue.fill("{a} and {unknown}", ["a": "x"]) == "x and {unknown}")
        #expect(Catalogue.fill("open {brace", [:]) == "open {brace")
        #expect(Catalogue.text("no.such.key", .ru) == "no.such.key")
    }

    @Test func datesAreWrittenAsEachLanguageDoes() {
        let day = Day("2026-11-02")!
        #expect(Catalogue.date(day, .en) == "2026-11-02")
        #expect(Catalogue.date(day, .ru) == "2 ноября 2026")
        for month in 1...12 {
            #expect(Catalogue.table(.ru)["month.\(month)"]?.isEmpty == false)
        }
    }

    /// A message whose placeholders a program fills must survive filling with no `{` left over.
    @Test func noMessageKeepsABraceOnceFilled() {
        for language in Language.allCases {
            for (key, text) in Catalogue.table(language) {
                let filled = Catalogue.fill(text, Dictionary(uniqueKeysWithValues: Catalogue.placeholders(text).map { ($0, "x") }))
                #expect(!filled.contains("{") && !filled.contains("}"), "\(language): \(key)")
            }
        }
    }
}

struct LanguageTests {
    @Test func environmentFollowsPOSIXOrder() {
        #expect(Language.fromEnvironment([:]) == .en)
        #expect(Language.fromEnvironment(["LANG": "ru_RU.UTF-8"]) == .ru)
        #expect(Language.fromEnvironment(["LANG": "ru_RU.UTF-8", "LC_MESSAGES": "en_GB.UTF-8"]) == .en)
        #expect(Language.fromEnvironment(["LANG": "en_US.UTF-8", "LC_MESSAGES": "ru_RU.UTF-8"]) == .ru)
        #expect(Language.fromEnvironment(["LANG": "en_US.UTF-8", "LC_ALL": "ru_RU"]) == .ru)
        #expect(Language.fromEnvironment(["LC_ALL": "", "LANG": "ru"]) == .ru)
        #expect(Language.fromEnvironment(["LANG": "C.UTF-8"]) == .en)
        #expect(Language.fromEnvironment(["LANG": "POSIX"]) == .en)
        #expect(Language.fromEnvironment(["LANG": "de_DE.UTF-8"]) == .en)
        #expect(Language.fromEnvironment(["LANG": "ru_UA@euro"]) == .ru)
    }

    @Test(
        arguments: [
            (nil, Language.en), ("", .en), ("ru", .ru), ("RU-ru", .ru), ("en", .en), ("de", .en), ("*", .en),
            ("ru;q=0.5, en;q=0.9", .en), ("en;q=0.5, ru;q=0.9", .ru), ("de, ru;q=0.1", .ru), ("ru;q=0", .en),
            ("ru;q=0, *;q=0.5", .en), ("*;q=0.5, en;q=0", .ru), ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", .ru),
            ("en, ru", .en), ("ru;q=1.5", .en), ("ru;q=abc", .en), ("ru;q=0.1234", .en), (";;,,", .en),
            ("\u{0}ru", .en), (String(repeating: "de,", count: 40) + "ru", .en),
        ] as [(String?, Language)])
    func acceptLanguageIsNegotiated(field: String?, expected: Language) {
        #expect(Language.negotiate(acceptLanguage: field) == expected, "\(String(describing: field))")
    }
}
