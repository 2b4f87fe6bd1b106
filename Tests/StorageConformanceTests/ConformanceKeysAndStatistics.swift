import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import Testing

/// Key maintenance and statistics, for every backend.
struct ConformanceKeysAndStatistics {
    /// After a KEK rotation, the rewrap moves every data key in batches, and a restart in the
    /// middle resumes where it stopped; every subject reads throughout.
    @Test(arguments: Backends.all)
    func theRewrapResumesAfterARestart(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        var handles: [CaseHandle] = []
        for i in 0..<25 {
            let receipt = try await registry.enrol(consent: "c\(i)")
            handles.append(receipt.caseHandle)
        }
        let before = registry.keys.current.primaryKEK.version
        registry.keys.replace(try registry.keys.current.rotatingKEK())
        let primary = registry.keys.current.primaryKEK.version
        #expect(primary != before)
        let first = try await registry.backend.rewrapBatch(limit: 10)
        #expect(first.rewrapped == 10)
        #expect(first.remaining == 15)
        try registry.backend.close()

        let restarted = try await registry.reopened()
        var progress = try await restarted.rewrapBatch(limit: 10)
        while progress.remaining > 0 { progress = try await restarted.rewrapBatch(limit: 10) }
        #expect(progress.primaryVersion == primary)
        #expect(try await restarted.kekUsage() == [primary: 25])
        for (i, handle) in handles.enumerated() {
            let view = try await restarted.subject(case: handle, clinic: Registry.clinicA)
            #expect(view.records.first.map { String(decoding: $0.plaintext, as: UTF8.self) } == "c\(i)")
        }
        try restarted.close()
    }

    /// Counters add up across subjects and anonymous counts, and a release over a spent
    /// privacy budget is refused with nothing charged and nothing stored.
    @Test(arguments: Backends.all)
    func countersAddUpAndTheBudgetHolds(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        try await registry.enrol(counters: [Registry.counter("enrolled")])
        try await registry.enrol(clinic: Registry.clinicB, counters: [Registry.counter("enrolled", clinic: Registry.clinicB)])
        try await registry.backend.count([Registry.counter("anonymous"), Registry.counter("anonymous")])
        let rows = try await registry.backend.counters(from: Registry.month, to: Registry.month)
        var totals: [String: Int] = [:]
        for row in rows { totals[row.key.metric, default: 0] += row.value }
        #expect(totals == ["enrolled": 2, "anonymous": 2])

        let release = { (query: String) in
            StoredRelease(query: query, releasedOn: Day("2026-12-01")!, epsilonMicro: 600_000, body: Array("{}".utf8))
        }
        _ = try await registry.backend.storeRelease(release("q1"), months: [Registry.month], budgetMicro: 1_000_000)
        var refusal: StorageError?
        do throws(StorageError) {
            _ = try await registry.backend.storeRelease(release("q2"), months: [Registry.month], budgetMicro: 1_000_000)
        } catch {
            refusal = error
        }
        guard case .privacyBudgetSpent? = refusal else {
            Issue.record("the release over the budget was not refused as privacyBudgetSpent: \(String(describing: refusal))")
            return
        }
        #expect(try await registry.backend.privacyBudgetSpent(from: Registry.month, to: Registry.month) == [Registry.month: 600_000])
        #expect(try await registry.backend.storedRelease(query: "q2") == nil)
        #expect(try await registry.backend.storedRelease(query: "q1") == release("q1"))
    }
}
