import RegistryCore
import RegistryProtocol
import Testing

@testable import RegistryStats

@Suite struct StatsBuilderTests {
    let jan = Month("2026-01")!, feb = Month("2026-02")!, mar = Month("2026-03")!

    func row(_ month: Month, _ category: String, _ clinic: String, _ metric: String, _ value: Int) -> CounterRow {
        CounterRow(key: CounterKey(month: month, category: category, clinic: ClinicID(clinic)!, metric: metric), value: value)
    }

    var counters: [CounterRow] {
        [
            row(jan, "dependence", "north", "enrolled", 12), row(jan, "dependence", "south", "enrolled", 7),
            row(feb, "dependence", "north", "enrolled", 9), row(feb, "dependence", "south", "enrolled", 2),
            row(mar, "dependence", "north", "enrolled", 6), row(mar, "dependence", "south", "enrolled", 8),
            row(feb, "dependence", "north", "completed", 5), row(jan, "harmful-use", "south", "enrolled", 20),
        ]
    }

    @Test func knownCountsGiveTheExpectedCells() throws {
        let builder = StatsBuilder(k: 5, categories: ["dependence", "harmful-use"], clinics: ["north", "south"])
        let response = try builder.build(
            StatsQuery(from: jan, to: mar, byClinic: true), counters: counters,
            uniquePersons: [
                UniquePersonCount(month: jan, category: "dependence", value: 17),
                UniquePersonCount(month: feb, category: "dependence", value: 3),
            ],
            today: Day("2026-03-15")!)
        let enrolled = try #require(response.tables.first { $0.metric == "enrolled" && $0.category == "dependence" })
        #expect(enrolled.columns == ["north", "south"])
        #expect(enrolled.rows.map(\.month) == [jan, feb, mar])
        #expect(enrolled.rows[0].cells.map(\.shown) == ["12", "7"])
        #expect(enrolled.rows[0].total.shown == "19")
        // February south = 2 is small: `<5`, and protected by complementary cells.
        #expect(enrolled.rows[1].cells[1].shown == "<5")
        #expect(enrolled.rows[1].cells[1].value == nil)
        // Suppressed month by month: February's own row protects it (north hidden, total 11
        // printed); totals over months that would add up a hidden cell are hidden too.
        #expect(enrolled.rows[1].cells.map(\.shown) == ["x", "<5"])
        #expect(enrolled.rows[1].total.shown == "11")
        #expect(enrolled.rows[2].cells.map(\.shown) == ["6", "8"])
        #expect(enrolled.columnTotals?.map(\.shown) == ["x", "x"])
        #expect(enrolled.total?.shown == "44")
        let completed = try #require(response.tables.first { $0.metric == "completed" && $0.category == "dependence" })
        #expect(completed.rows[1].cells.map(\.shown) == ["5", "0"])
        // Unique persons: closed months only (January, February), no totals, small cells hidden.
        let unique = try #require(response.tables.first { $0.metric == "unique-persons" && $0.category == "dependence" })
        #expect(unique.rows.map(\.month) == [jan, feb])
        #expect(unique.rows.map(\.total.shown) == ["17", "<5"])
        #expect(unique.total == nil)
        #expect(response.closedThrough == feb)
        #expect(response.tables.count == 2 * CounterMetric.all.count)
    }

    @Test func withoutClinicsTheTotalsFollowTheSamePattern() throws {
        let builder = StatsBuilder(k: 5, categories: ["dependence", "harmful-use"], clinics: ["north", "south"])
        let today = Day("2026-03-15")!
        let byClinic = try builder.build(
            StatsQuery(from: jan, to: mar, byClinic: true), counters: counters, uniquePersons: [], today: today)
        let plain = try builder.build(StatsQuery(from: jan, to: mar), counters: counters, uniquePersons: [], today: today)
        for (a, b) in zip(byClinic.tables, plain.tables) {
            #expect(b.columns.isEmpty && b.rows.allSatisfy { $0.cells.isEmpty })
            #expect(a.rows.map(\.total) == b.rows.map(\.total))
            #expect(a.total == b.total)
        }
    }

    @Test func aCategoryFilterAndAnUnknownCategory() throws {
        let builder = StatsBuilder(k: 5, categories: ["dependence", "harmful-use"], clinics: [])
        let response = try builder.build(
            StatsQuery(from: jan, to: jan, category: "harmful-use"), counters: counters, uniquePersons: [],
            today: Day("2026-03-01")!)
        #expect(Set(response.tables.map(\.category)) == ["harmful-use"])
        #expect(throws: WireError.self) {
            try builder.build(
                StatsQuery(from: jan, to: jan, category: "nope"), counters: counters, uniquePersons: [], today: Day("2026-03-01")!)
        }
    }

    @Test func noisyReleasesAreClampedAndStillSuppressed() throws {
        let builder = StatsBuilder(k: 5, categories: ["dependence"], clinics: ["north", "south"])
        let response = try builder.build(
            StatsQuery(from: jan, to: mar, byClinic: true), counters: counters,
            uniquePersons: [UniquePersonCount(month: jan, category: "dependence", value: 17)], today: Day("2026-03-15")!,
            privacy: .init(epsilonMicro: 500_000, random: SplitMix(seed: 1)))
        #expect(response.privacy?.epsilon == "0.5")
        for table in response.tables {
            for cell in table.rows.flatMap({ $0.cells + [$0.total] }) {
                if let v = cell.value { #expect(v == 0 || v >= 5) } else { #expect(cell.shown == "<5" || cell.shown == "x") }
            }
        }
        // Noise moved the counts, against the same input without noise (40 leaves at ε = 0.5:
        // all unchanged has probability ≈ 0.24^40).
        let unique = [UniquePersonCount(month: jan, category: "dependence", value: 17)]
        let plain = try builder.build(
            StatsQuery(from: jan, to: mar, byClinic: true), counters: counters, uniquePersons: unique,
            today: Day("2026-03-15")!)
        let additive = { (r: StatsResponse) in r.tables.filter { $0.metric != CounterMetric.uniquePersons } }
        #expect(additive(response) != additive(plain))
        // Unique-person counts get noise too (DESIGN invariant 2): over 20 seeded releases the
        // count of 17 is not always printed as 17 (probability ≈ 0.24^20 that it would be).
        var seen = Set<String>()
        for seed in 1...20 {
            let noisy = try builder.build(
                StatsQuery(from: jan, to: jan), counters: [], uniquePersons: unique, today: Day("2026-03-15")!,
                privacy: .init(epsilonMicro: 500_000, random: SplitMix(seed: UInt64(seed))))
            let table = try #require(noisy.tables.first { $0.metric == CounterMetric.uniquePersons })
            seen.insert(table.rows[0].total.shown)
        }
        #expect(seen.count > 1 && seen != ["17"], "unique-person counts were released without noise: \(seen)")
        let exact = try #require(plain.tables.first { $0.metric == CounterMetric.uniquePersons })
        #expect(exact.rows[0].total.shown == "17")
    }
}

@Suite struct StatsQueryTests {
    let march = Month("2026-03")!
    func parse(_ pairs: [(String, String)]) throws(WireError) -> StatsQuery { try StatsQuery.parse(pairs, currentMonth: march) }

    @Test func valid() throws {
        let q = try parse([("from", "2026-01"), ("to", "2026-03"), ("byClinic", "true"), ("format", "csv"), ("category", "dependence")])
        #expect(q == StatsQuery(from: Month("2026-01")!, to: march, byClinic: true, category: "dependence", format: .csv))
        #expect(q.releaseKey == "from=2026-01&to=2026-03&byClinic=true&category=dependence")
    }

    /// Each case: a query string and the error code it must get.
    static let invalidCases: [(String, String)] = [
        ("to=2026-03", "missing_field"),
        ("from=2026-13&to=2026-03", "invalid_month"),
        ("from=2026-1&to=2026-03", "invalid_month"),
        ("from=2026-03&to=2026-01", "invalid_value"),
        ("from=2026-01&to=2026-04", "invalid_value"),
        ("from=2020-01&to=2026-03", "invalid_value"),
        ("from=2026-01&to=2026-03&format=svg", "invalid_value"),
        ("from=2026-01&to=2026-03&byClinic=yes", "invalid_value"),
        ("from=2026-01&to=2026-03&category=A B", "invalid_value"),
        ("from=2026-01&to=2026-03&from=2026-02", "invalid_value"),
        ("from=2026-01&to=2026-03&clinic=north", "unknown_field"),
    ]

    @Test func invalid() {
        for (query, code) in Self.invalidCases {
            let pairs: [(String, String)] = query.split(separator: "&").map { part in
                let kv = part.split(separator: "=", maxSplits: 1)
                return (String(kv[0]), String(kv[1]))
            }
            do {
                _ = try parse(pairs)
                Issue.record("accepted \(query)")
            } catch {
                #expect(error.code == code, "\(query)")
            }
        }
    }
}
