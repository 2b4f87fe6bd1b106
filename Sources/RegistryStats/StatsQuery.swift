import RegistryProtocol

/// The parameters of `GET /v1/stats` (docs/PROTOCOL.md §Statistics), validated.
public struct StatsQuery: Sendable, Equatable {
    public enum Format: String, Sendable, CaseIterable { case json, csv }

    public var from: Month
    public var to: Month
    public var byClinic: Bool
    public var category: String?
    public var format: Format

    /// The longest range one request may cover.
    public static let maxMonths = 60

    public init(from: Month, to: Month, byClinic: Bool = false, category: String? = nil, format: Format = .json) {
        self.from = from
        self.to = to
        self.byClinic = byClinic
        self.category = category
        self.format = format
    }

    /// Parses query parameters. Unknown or repeated parameters, bad months, `from` after `to`,
    /// a range past the current month or longer than `maxMonths`, and unknown formats are refused
    /// with a `WireError` (400).
    public static func parse(_ parameters: [(String, String)], currentMonth: Month) throws(WireError) -> StatsQuery {
        var seen: [String: String] = [:]
        let accepted = ["from", "to", "byClinic", "category", "format"]
        for (key, value) in parameters {
            guard accepted.contains(key) else { throw .unknownField(in: "query", accepted: accepted) }
            guard seen[key] == nil else { throw .invalidValue(field: key, reason: "is given more than once") }
            seen[key] = value
        }
        guard let fromText = seen["from"] else { throw .missingField("from") }
        guard let toText = seen["to"] else { throw .missingField("to") }
        guard let from = Month(fromText) else { throw .invalidMonth("from") }
        guard let to = Month(toText) else { throw .invalidMonth("to") }
        guard from <= to else { throw .invalidValue(field: "from", reason: "must not be after to") }
        guard to <= currentMonth else { throw .invalidValue(field: "to", reason: "must not be after the current month (\(currentMonth))") }
        guard from.months(through: to).count <= maxMonths else {
            throw .invalidValue(field: "from", reason: "must be at most \(maxMonths) months before to")
        }
        var byClinic = false
        if let text = seen["byClinic"] {
            guard text == "true" || text == "false" else { throw .invalidValue(field: "byClinic", reason: "must be true or false") }
            byClinic = text == "true"
        }
        var format = Format.json
        if let text = seen["format"] {
            guard let f = Format(rawValue: text) else { throw .invalidValue(field: "format", reason: "must be json or csv") }
            format = f
        }
        let category = seen["category"]
        if let category {
            guard !category.isEmpty, category.utf8.count <= 64,
                category.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 })
            else {
                throw .invalidValue(field: "category", reason: "must be a category name (1-64 of a-z 0-9 - _)")
            }
        }
        return StatsQuery(from: from, to: to, byClinic: byClinic, category: category, format: format)
    }

    /// The key a stored release is found by: every parameter that changes the numbers (not the
    /// format, which only changes their rendering).
    public var releaseKey: String {
        "from=\(from)&to=\(to)&byClinic=\(byClinic)&category=\(category ?? "*")"
    }
}

extension Month {
    public var previous: Month { month == 1 ? Month(year: year - 1, month: 12)! : Month(year: year, month: month - 1)! }

    /// `self`, the next month, … up to and including `last` (empty when `last` is earlier).
    public func months(through last: Month) -> [Month] {
        var out: [Month] = []
        var m = self
        while m <= last {
            out.append(m)
            if m.year == 9999 && m.month == 12 { break }
            m = m.next
        }
        return out
    }
}
