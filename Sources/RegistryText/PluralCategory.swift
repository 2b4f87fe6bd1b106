/// The CLDR plural categories (Unicode TR 35, Part 3, §5.1 Plural rules). A plural message has one
/// catalogue entry per category its language uses: `days[one]`, `days[few]`, `days[many]`, ...
public enum PluralCategory: String, CaseIterable, Sendable {
    case zero, one, two, few, many, other
}

extension Language {
    /// The categories a whole number can fall into in this language: every plural message must
    /// have each of them.
    public var pluralCategories: [PluralCategory] {
        switch self {
        case .en: [.one, .other]
        case .ru: [.one, .few, .many]
        }
    }

    /// The category of a whole number, by the CLDR rules for integers (v = 0):
    /// - en: one if n = 1, else other;
    /// - ru: one if n mod 10 = 1 and n mod 100 ≠ 11; few if n mod 10 is 2–4 and n mod 100 is
    ///   not 12–14; many otherwise (1 день, 2 дня, 5 дней, 11 дней, 21 день, 22 дня).
    public func pluralCategory(_ n: Int) -> PluralCategory {
        let n = n.magnitude
        switch self {
        case .en:
            return n == 1 ? .one : .other
        case .ru:
            let mod10 = n % 10
            let mod100 = n % 100
            if mod10 == 1 && mod100 != 11 { return .one }
            if (2...4).contains(mod10) && !(12...14).contains(mod100) { return .few }
            return .many
        }
    }
}
