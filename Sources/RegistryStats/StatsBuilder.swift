import RegistryCore
import RegistryProtocol

/// Builds the published statistics from the counters (docs/PROTOCOL.md §Statistics): one table
/// per metric and category, rows = months, with a clinic breakdown on request; small cells
/// suppressed, complementary suppression to a fixed point, and optional noise first.
public struct StatsBuilder {
    /// Differential privacy for one release: ε in millionths and the randomness to draw from.
    public struct Privacy {
        public var epsilonMicro: Int
        public var random: any UniformSource

        public init(epsilonMicro: Int, random: any UniformSource) {
            self.epsilonMicro = epsilonMicro
            self.random = random
        }
    }

    public var k: Int
    /// The categories to list even when they have no counts (from the configuration).
    public var categories: [String]
    /// The clinics to list in a breakdown even when they have no counts.
    public var clinics: [String]

    public init(k: Int, categories: [String], clinics: [String]) {
        self.k = k
        self.categories = categories
        self.clinics = clinics
    }

    /// The release for `query` on `today`. Unique-person counts exist only for closed months
    /// (before today's month). With `privacy`, every leaf count gets two-sided geometric noise,
    /// is clamped at 0, and totals are sums of the noisy leaves; suppression then applies to
    /// the noisy table as to any other.
    public func build(
        _ query: StatsQuery, counters: [CounterRow], uniquePersons: [UniquePersonCount], today: Day, privacy: Privacy? = nil
    ) throws -> StatsResponse {
        let months = query.from.months(through: query.to)
        let closedThrough = today.month.previous
        var noise = privacy.map { (GeometricNoise(epsilonMicro: $0.epsilonMicro), $0.random) }
        func noisy(_ value: Int) throws -> Int {
            guard var (mechanism, random) = noise else { return value }
            defer { noise = (mechanism, random) }
            return max(0, value + (try mechanism.sample(&random)))
        }

        let known = Set(categories).union(counters.map(\.key.category)).union(uniquePersons.map(\.category))
        let wanted = query.category.map { [$0] } ?? known.sorted()
        if let category = query.category, !known.contains(category) {
            throw WireError.invalidValue(field: "category", reason: "must be one of: \(known.sorted().joined(separator: ", "))")
        }
        let clinicList = Set(clinics).union(counters.map(\.key.clinic.rawValue)).sorted()
        var values: [String: [String: [Month: [String: Int]]]] = [:]  // metric → category → month → clinic
        for row in counters {
            values[row.key.metric, default: [:]][row.key.category, default: [:]][row.key.month, default: [:]][
                row.key.clinic.rawValue, default: 0] += row.value
        }

        var tables: [StatsTable] = []
        for category in wanted {
            for metric in CounterMetric.additive {
                let cells = values[metric]?[category] ?? [:]
                let inner: [[Int]]
                let columns: [String]
                if privacy != nil {
                    // Noise on the leaves of the requested layout.
                    columns = query.byClinic ? clinicList : ["all"]
                    inner = try months.map { m in
                        try columns.map { c in
                            try noisy(query.byClinic ? cells[m]?[c] ?? 0 : (cells[m]?.values.reduce(0, +) ?? 0))
                        }
                    }
                } else {
                    // Always suppressed at clinic level, so that the layout without clinics is the
                    // total column of the same pattern: two requests never combine to reveal more.
                    columns = clinicList
                    inner = months.map { m in columns.map { c in cells[m]?[c] ?? 0 } }
                }
                let table = MarginTable(inner: inner, columns: columns.count)
                // Without noise, a month's pattern must not depend on the range asked (overlapping
                // ranges would combine); with noise, every release is a fresh noisy table.
                let configured = Set(clinics)
                let status =
                    privacy == nil
                    ? Suppression.applyByMonth(table, k: k, fixedColumns: Set(columns.indices.filter { configured.contains(columns[$0]) }))
                    : Suppression.apply(table, k: k)
                func cell(_ r: Int, _ c: Int) -> StatsCell { Self.cell(table[r, c], status[r][c], k: k) }
                let showColumns = query.byClinic
                tables.append(
                    StatsTable(
                        metric: metric, category: category, columns: showColumns ? columns : [],
                        rows: months.indices.map { r in
                            StatsRow(
                                month: months[r], cells: showColumns ? columns.indices.map { cell(r, $0) } : [],
                                total: cell(r, columns.count))
                        },
                        columnTotals: showColumns ? columns.indices.map { cell(months.count, $0) } : nil,
                        total: cell(months.count, columns.count)))
            }
            // Unique persons: closed months only, across clinics, no totals (persons seen in two
            // months are one person in each), so cells are independent: primary suppression only.
            let closed = months.filter { $0 <= closedThrough }
            var counts: [Month: Int] = [:]
            for u in uniquePersons where u.category == category { counts[u.month, default: 0] += u.value }
            tables.append(
                StatsTable(
                    metric: CounterMetric.uniquePersons, category: category, columns: [],
                    rows: try closed.map { m in
                        let value = try noisy(counts[m] ?? 0)
                        return StatsRow(
                            month: m, cells: [], total: Self.cell(value, (1..<max(k, 1)).contains(value) ? .primary : .published, k: k))
                    },
                    columnTotals: nil, total: nil))
        }
        let privacyWire = privacy.map {
            StatsPrivacy(mechanism: "two-sided geometric", epsilon: Self.decimal($0.epsilonMicro), releasedOn: today)
        }
        return StatsResponse(
            from: query.from, to: query.to, byClinic: query.byClinic, category: query.category, generatedOn: today,
            k: k, closedThrough: closedThrough, privacy: privacyWire, tables: tables)
    }

    static func cell(_ value: Int, _ status: CellStatus, k: Int) -> StatsCell {
        switch status {
        case .published: StatsCell(value: value, shown: String(value))
        case .primary: StatsCell(value: nil, shown: "<\(k)")
        case .complementary: StatsCell(value: nil, shown: "x")
        }
    }

    /// Millionths as a decimal: 1500000 → "1.5".
    public static func decimal(_ micro: Int) -> String {
        let whole = micro / 1_000_000
        var fraction = String(micro % 1_000_000)
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return fraction.isEmpty ? String(whole) : "\(whole).\(fraction)"
    }
}
