import RegistryProtocol

/// The messages of every language, from `Catalogues/<language>.catalogue`, compiled into the
/// binary at build time (docs/TRANSLATING.md). A message names its variable parts `{name}`; a
/// plural message has one entry per plural category (`days[one]`, `days[few]`, ...) and names the
/// number `{n}`.
public enum Catalogue {
    /// Every message of a language, by key (empty for a language without a catalogue).
    public static func table(_ language: Language) -> [String: String] {
        compiled[language.rawValue] ?? [:]
    }

    /// Message `key` in `language`, with its placeholders filled in from `arguments`. A message
    /// missing from a language's catalogue falls back to English, and then to the key itself
    /// (the catalogue tests keep both from happening).
    public static func text(_ key: String, _ language: Language, _ arguments: [String: String] = [:]) -> String {
        fill(raw(key, language) ?? key, arguments)
    }

    /// The plural message `key` for the whole number `n`: the entry for `n`'s plural category in
    /// `language` (`key[one]`, `key[few]`, ...), with `{n}` and `arguments` filled in.
    public static func count(_ key: String, _ n: Int, _ language: Language, _ arguments: [String: String] = [:]) -> String {
        let category = language.pluralCategory(n)
        let template = raw("\(key)[\(category.rawValue)]", language) ?? raw("\(key)[other]", language) ?? key
        var all = arguments
        all["n"] = String(n)
        return fill(template, all)
    }

    /// A day as people of `language` write it: `date.format` with `{iso}` (2026-11-02),
    /// `{day}` (2), `{month}` (`month.11` of the catalogue) and `{year}` (2026).
    public static func date(_ day: Day, _ language: Language) -> String {
        let (year, month, dayOfMonth) = day.components
        return text(
            "date.format", language,
            [
                "iso": day.description, "day": String(dayOfMonth), "month": text("month.\(month)", language), "year": String(year),
            ])
    }

    /// The placeholder names of a message, for the catalogue checks.
    public static func placeholders(_ template: String) -> Set<String> {
        var names = Set<String>()
        var current: String? = nil
        for c in template {
            if c == "{" {
                current = ""
            } else if c == "}", let name = current {
                names.insert(name)
                current = nil
            } else if current != nil {
                current!.append(c)
            }
        }
        return names
    }

    static func raw(_ key: String, _ language: Language) -> String? {
        compiled[language.rawValue]?[key] ?? compiled[Language.fallback.rawValue]?[key]
    }

    /// Replaces each `{name}` that `arguments` has; any other text is kept as it is.
    static func fill(_ template: String, _ arguments: [String: String]) -> String {
        guard template.contains("{") else { return template }
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                rest = rest[open...]
                break
            }
            let name = String(rest[rest.index(after: open)..<close])
            out += arguments[name] ?? String(rest[open...close])
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return out
    }
}
