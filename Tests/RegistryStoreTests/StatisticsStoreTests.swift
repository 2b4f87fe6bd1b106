import Foundation
import RegistryCore
import RegistryProtocol
import Testing

@testable import RegistryStore

/// Counters, unique persons per closed month, stored releases and the privacy budget, over the
/// real store and the real monitoring service.
struct StatisticsStoreTests {
    let fixture: StoreFixture
    let clock = FixedDayClock(Day("2026-03-10")!)
    let rules = MonitoringRules(
        categories: ["dependence": .dependence, "harmful-use": .harmfulUse],
        substances: MonitoringRules.defaultSubstances, treatments: MonitoringRules.defaultTreatments,
        retention: Retention())
    var service: MonitoringService { MonitoringService(storage: fixture.store, rules: rules, clock: clock) }

    init() throws { fixture = try StoreFixture() }

    func linkage(_ byte: UInt8) -> String { String(repeating: String(format: "%02x", byte), count: 64) }

    @discardableResult
    func enrol(
        _ clinic: ClinicID, category: String = "dependence", on day: String = "2026-03-02", linkage: String? = nil,
        statistics: Bool = true
    ) async throws -> EnrolResponse {
        let scope = statistics ? "[\"monitoring\",\"statistics\"]" : "[\"monitoring\"]"
        var body =
            "{\"consent\":{\"form\":\"F\",\"givenOn\":\"\(day)\",\"method\":\"written\",\"scope\":\(scope)},\"category\":\"\(category)\",\"enrolledOn\":\"\(day)\""
        if let linkage { body += ",\"linkage\":\"\(linkage)\"" }
        return try await service.enrol(clinic: clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data((body + "}").utf8)))
    }

    func value(_ rows: [CounterRow], _ month: String, _ category: String, _ clinic: ClinicID, _ metric: String) -> Int? {
        rows.first { $0.key == CounterKey(month: Month(month)!, category: category, clinic: clinic, metric: metric) }?.value
    }

    @Test func aKnownEventSetGivesExactlyTheExpectedCounters() async throws {
        let a = StoreFixture.clinicA
        let b = StoreFixture.clinicB
        // The same person (linkage 1) enrolled at two clinics, another (2) once, a third (3) in
        // harmful-use, one person without statistics consent, and one backdated to February.
        try await enrol(a, linkage: linkage(1))
        try await enrol(b, linkage: linkage(1))
        let second = try await enrol(a, linkage: linkage(2))
        try await enrol(b, category: "harmful-use", linkage: linkage(3))
        try await enrol(a, linkage: linkage(4), statistics: false)
        try await enrol(a, on: "2026-02-20")
        _ = try await service.anonymousEpisode(
            clinic: b,
            try JSONDecoder().decode(
                AnonymousEpisodeRequest.self, from: Data("{\"category\":\"dependence\",\"on\":\"2026-03-05\"}".utf8)))
        // The second person withdraws: erased, but counted.
        _ = try await service.withdraw(clinic: a, case: CaseHandle(second.case)!)

        let rows = try await fixture.store.counters(from: Month("2026-01")!, to: Month("2026-12")!)
        #expect(value(rows, "2026-03", "dependence", a, "enrolled") == 2)
        #expect(value(rows, "2026-03", "dependence", b, "enrolled") == 1)
        #expect(value(rows, "2026-03", "harmful-use", b, "enrolled") == 1)
        #expect(value(rows, "2026-02", "dependence", a, "enrolled") == 1)
        #expect(value(rows, "2026-03", "dependence", b, "anonymous-episode") == 1)
        #expect(value(rows, "2026-03", "dependence", a, "withdrawn") == 1)
        #expect(rows.count == 6, "no other cells: \(rows)")

        // Unique persons: tags for the open month only, none released yet.
        #expect(try await fixture.store.openUniquePersonTags() == 3)
        #expect(try await fixture.store.foldUniquePersons(before: Month("2026-03")!) == 0)
        #expect(try await fixture.store.uniquePersons(from: Month("2026-01")!, to: Month("2026-12")!).isEmpty)

        // April: the sweeper closes March. Tags become counts and are deleted.
        clock.set(Day("2026-04-01")!)
        _ = try await Sweeper(storage: fixture.store, rules: rules, clock: clock).run()
        let unique = try await fixture.store.uniquePersons(from: Month("2026-01")!, to: Month("2026-12")!)
        #expect(
            unique == [
                UniquePersonCount(month: Month("2026-03")!, category: "dependence", value: 2),
                UniquePersonCount(month: Month("2026-03")!, category: "harmful-use", value: 1),
            ])
        #expect(try await fixture.store.openUniquePersonTags() == 0)
        #expect(try fixture.sqlite("SELECT count(*) FROM unique_person_seen") == "0")
        // Folded counts are not per-clinic counters.
        #expect(
            try await fixture.store.counters(from: Month("2026-03")!, to: Month("2026-03")!).allSatisfy {
                $0.key.metric != "unique-persons"
            })

        // The same person in April is a new tag that nothing links to March.
        try await enrol(a, on: "2026-04-01", linkage: linkage(1))
        #expect(try await fixture.store.openUniquePersonTags() == 1)
        #expect(try await fixture.store.foldUniquePersons(before: Month("2026-04")!) == 0)
    }

    @Test func aStoredReleaseIsReturnedAgainAndTheBudgetRefusesMore() async throws {
        let jan = Month("2026-01")!
        let feb = Month("2026-02")!
        let mar = Month("2026-03")!
        let first = StoredRelease(query: "q1", releasedOn: Day("2026-03-10")!, epsilonMicro: 500_000, body: Array("{\"a\":1}".utf8))
        #expect(try await fixture.store.storeRelease(first, months: [jan, feb], budgetMicro: 1_000_000) == first)
        // The same query again: the stored release, not the new body, and nothing charged.
        let again = StoredRelease(query: "q1", releasedOn: Day("2026-03-11")!, epsilonMicro: 500_000, body: Array("{\"a\":2}".utf8))
        #expect(try await fixture.store.storeRelease(again, months: [jan, feb], budgetMicro: 1_000_000) == first)
        #expect(try await fixture.store.storedRelease(query: "q1") == first)
        #expect(try await fixture.store.privacyBudgetSpent(from: jan, to: mar) == [jan: 500_000, feb: 500_000])

        let second = StoredRelease(query: "q2", releasedOn: Day("2026-03-10")!, epsilonMicro: 500_000, body: Array("{}".utf8))
        _ = try await fixture.store.storeRelease(second, months: [feb], budgetMicro: 1_000_000)
        let third = StoredRelease(query: "q3", releasedOn: Day("2026-03-10")!, epsilonMicro: 500_000, body: Array("{}".utf8))
        var refusal: String?
        do { _ = try await fixture.store.storeRelease(third, months: [feb, mar], budgetMicro: 1_000_000) } catch {
            if case .privacyBudgetSpent = error { refusal = "privacy_budget_spent" }
        }
        #expect(refusal == "privacy_budget_spent")
        // Refused: nothing charged, nothing stored.
        #expect(try await fixture.store.privacyBudgetSpent(from: jan, to: mar) == [jan: 500_000, feb: 1_000_000])
        #expect(try await fixture.store.storedRelease(query: "q3") == nil)
    }

    /// docs/CRYPTO.md §Differential privacy: a month is held to the budget configured at its
    /// first noisy release, whatever is configured later; a month charged before that was
    /// recorded (schema v4) takes the budget of its next charge, and never more after.
    @Test func aMonthKeepsTheBudgetOfItsFirstRelease() async throws {
        let jan = Month("2026-01")!
        let feb = Month("2026-02")!
        func release(_ query: String) -> StoredRelease {
            StoredRelease(query: query, releasedOn: Day("2026-03-10")!, epsilonMicro: 500_000, body: Array("{}".utf8))
        }
        func refused(_ query: String, _ months: [Month], budget: Int) async -> Bool {
            do { _ = try await fixture.store.storeRelease(release(query), months: months, budgetMicro: budget) } catch {
                if case .privacyBudgetSpent = error { return true }
            }
            return false
        }
        _ = try await fixture.store.storeRelease(release("a"), months: [jan], budgetMicro: 1_000_000)
        _ = try await fixture.store.storeRelease(release("b"), months: [jan], budgetMicro: 1_000_000)
        // The admin raises monthly_budget to 3: January stays at 1.
        #expect(await refused("c", [jan], budget: 3_000_000))
        #expect(try await fixture.store.privacyBudgets() == [PrivacyBudgetMonth(month: jan, spentMicro: 1_000_000, capMicro: 1_000_000)])
        // Lowering it holds every month to the lower figure.
        _ = try await fixture.store.storeRelease(release("d"), months: [feb], budgetMicro: 3_000_000)
        #expect(await refused("e", [feb], budget: 500_000))
        // A month charged before caps were recorded (as after the v4 migration).
        try fixture.sqlite("UPDATE privacy_budget SET cap_micro = NULL WHERE month = '2026-02'")
        _ = try await fixture.store.storeRelease(release("f"), months: [feb], budgetMicro: 1_500_000)
        #expect(try await fixture.store.privacyBudgets().last == PrivacyBudgetMonth(month: feb, spentMicro: 1_000_000, capMicro: 1_500_000))
        _ = try await fixture.store.storeRelease(release("g"), months: [feb], budgetMicro: 9_000_000)
        #expect(await refused("h", [feb], budget: 9_000_000))
    }

    @Test func privacySettingsAreRecordedOnlyWhenTheyChange() async throws {
        let on = PrivacySettings(privacy: true, epsilonMicro: 500_000, budgetMicro: 2_000_000)
        #expect(try await fixture.store.recordPrivacySettings(on, on: Day("2026-03-01")!))
        #expect(try await !fixture.store.recordPrivacySettings(on, on: Day("2026-03-02")!))
        var off = on
        off.privacy = false
        #expect(try await fixture.store.recordPrivacySettings(off, on: Day("2026-03-03")!))
        #expect(
            try await fixture.store.privacySettingsHistory() == [
                PrivacySettingsChange(recordedOn: Day("2026-03-01")!, settings: on),
                PrivacySettingsChange(recordedOn: Day("2026-03-03")!, settings: off),
            ])
        #expect(off.summary == "privacy=off epsilon=0.5 monthly_budget=2")
    }
}
