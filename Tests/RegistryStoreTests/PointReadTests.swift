import Foundation
import RegistryCore
import Synchronization
import Testing

@testable import RegistryStore

/// `SQLiteRegistryStore.readPoint` (docs/PERFORMANCE.md §Executor hops): a subject's point read
/// runs on its caller's thread, but never on more than half of the cores at once, and always
/// gives its place back.
struct PointReadTests {
    final class Tally: Sendable {
        let inside = Atomic<Int>(0)
        let most = Atomic<Int>(0)
        let mostInline = Atomic<Int>(0)
    }

    @Test func theAllowanceNeverGivesMorePlacesThanItsLimit() async {
        let allowance = InlineAllowance(limit: 2)
        #expect(allowance.enter() && allowance.enter())
        #expect(!allowance.enter(), "a third place beyond the limit of 2")
        allowance.leave()
        #expect(allowance.enter())
        allowance.leave()
        allowance.leave()
        #expect(allowance.taken == 0)

        // Many tasks at once: never more than the limit inside.
        let tally = Tally()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    for _ in 0..<200 {
                        guard allowance.enter() else { continue }
                        let now = tally.inside.add(1, ordering: .relaxed).newValue
                        tally.most.max(now, ordering: .relaxed)
                        tally.inside.subtract(1, ordering: .relaxed)
                        allowance.leave()
                    }
                }
            }
        }
        #expect(tally.most.load(ordering: .relaxed) <= 2)
        #expect(allowance.taken == 0)
    }

    @Test func pointReadsBeyondTheAllowanceTakeTheQueueAndEveryPlaceComesBack() async throws {
        let f = try StoreFixture()
        let store = f.store
        let limit = store.inlineReads.limit
        let tally = Tally()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    try await store.readPoint { db in
                        tally.mostInline.max(store.inlineReads.taken, ordering: .relaxed)
                        let now = tally.inside.add(1, ordering: .relaxed).newValue
                        tally.most.max(now, ordering: .relaxed)
                        // Long enough for the reads to overlap.
                        usleep(5_000)
                        tally.inside.subtract(1, ordering: .relaxed)
                        _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM subject")
                    }
                }
            }
            try await group.waitForAll()
        }
        // Some ran on their callers' threads, never more than the limit at once; the others did
        // not wait for a place but ran beside them on the readers' queues.
        #expect(
            (1...limit).contains(tally.mostInline.load(ordering: .relaxed)),
            "inline point reads at once: \(tally.mostInline.load(ordering: .relaxed)), limit \(limit)")
        #expect(tally.most.load(ordering: .relaxed) > limit, "16 overlapping point reads never ran more than \(limit) at once")
        #expect(store.inlineReads.taken == 0)

        // A read that fails (a case that does not exist, a body that throws) gives its place back.
        await #expect(throws: StorageError.caseNotFound) {
            _ = try await store.summary(case: CaseHandle("case_" + String(repeating: "07", count: 16))!, clinic: StoreFixture.clinicA)
        }
        await #expect(throws: (any Error).self) {
            try await store.readPoint { db in try db.execute(sql: "SELECT * FROM no_such_table") }
        }
        #expect(store.inlineReads.taken == 0)

        // And a point read still answers what the history holds.
        let receipt = try await f.enrol()
        try await f.addCheckup(receipt.caseHandle, note: "first")
        let opened = try await store.openForChange(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
        #expect(opened.view.plaintexts.last == "first")
        #expect(store.inlineReads.taken == 0)
    }
}
