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

    @Test func aPointReadBeyondTheAllowanceTakesTheQueueInsteadOfWaiting() async throws {
        let f = try StoreFixture()
        let store = f.store
        let limit = store.inlineReads.limit
        #expect(limit == ProcessInfo.processInfo.activeProcessorCount / 2)
        // Fill every place with a read that stays until released; a further read must then run
        // at once on the readers' queue: it neither waits for a place nor takes one beyond the
        // limit. Needs a free gate permit beside the held reads (true up to 9 cores).
        try #require(limit < store.readGate.permits, "\(limit) inline places, \(store.readGate.permits) gate permits")
        let gate = Gate()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<limit {
                group.addTask {
                    try await store.readPoint { db in
                        _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM subject")
                        // Held for at most 60 s; the test releases it once the extra read is done.
                        for _ in 0..<60_000 where !gate.released { usleep(1000) }
                    }
                }
            }
            try await FairnessTests.waitUntil { store.inlineReads.taken == limit }
            #expect(store.inlineReads.taken == limit)
            let refusedBefore = store.inlineReads.refused
            let count = try await store.readPoint { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? -1 }
            #expect(count == 0)
            #expect(store.inlineReads.refused == refusedBefore + 1, "the extra read was not sent to the queue")
            #expect(store.inlineReads.taken == limit, "the extra read took a place beyond the limit")
            gate.open()
            try await group.waitForAll()
        }
        #expect(store.inlineReads.taken == 0)
    }

    @Test func everyPointReadGivesItsPlaceBackAndStillReadsOneSnapshot() async throws {
        let f = try StoreFixture()
        let store = f.store
        // A read that fails (a case that does not exist, a body that throws) gives its place back.
        await #expect(throws: StorageError.caseNotFound) {
            _ = try await store.summary(case: CaseHandle("case_" + String(repeating: "07", count: 16))!, clinic: StoreFixture.clinicA)
        }
        await #expect(throws: (any Error).self) {
            try await store.readPoint { db in try db.execute(sql: "SELECT * FROM no_such_table") }
        }
        #expect(store.inlineReads.taken == 0)

        // A point read is one read transaction: a commit between its two statements is not seen.
        let receipt = try await f.enrol()
        let seen = try await store.readPoint { db -> (Int, Int) in
            let before = try Int.fetchOne(db, sql: "SELECT count(*) FROM counter") ?? -1
            try f.sqlite("INSERT INTO counter (month, category, clinic, metric, value) VALUES ('2026-11', 'x', 'c', 'm', 1)")
            let sameSnapshot = try Int.fetchOne(db, sql: "SELECT count(*) FROM counter") ?? -1
            return (before, sameSnapshot)
        }
        #expect(seen.0 == seen.1, "a point read saw a commit made after its first statement")
        let after = try await store.readPoint { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM counter") ?? -1 }
        #expect(after == seen.0 + 1, "the commit is seen by the next read")
        try await f.addCheckup(receipt.caseHandle, note: "first")
        let opened = try await store.openForChange(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
        #expect(opened.view.plaintexts.last == "first")
        #expect(store.inlineReads.taken == 0)
    }

    /// A backup holds a reader connection for its whole copy: it waits for the read gate like
    /// every read, so that a permit always means a free connection (`readPoint`).
    @Test func aBackupWaitsForTheReadGateLikeEveryRead() async throws {
        let f = try StoreFixture()
        let store = f.store
        try await f.enrol()
        let gate = Gate()
        let finished = Gate()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<store.readGate.permits {
                group.addTask { try await store.read { _ in for _ in 0..<60_000 where !gate.released { usleep(1000) } } }
            }
            try await FairnessTests.waitUntil { store.readGate.free == 0 }
            #expect(store.readGate.free == 0)
            group.addTask {
                let prepared = try await store.prepareBackup(in: f.tmp.path)
                #expect(prepared.totalBytes > 0)
                finished.open()
            }
            try await FairnessTests.waitUntil { store.readGate.waiting == 1 }
            #expect(store.readGate.waiting == 1, "the backup did not wait for a permit")
            #expect(!finished.released, "the backup ran while every reader was taken")
            gate.open()
            try await group.waitForAll()
        }
        #expect(finished.released)
        #expect(store.readGate.free == store.readGate.permits)
    }

    /// A flag the held reads poll (read from GRDB's bodies, which are not async).
    final class Gate: Sendable {
        private let flag = Atomic<Bool>(false)
        var released: Bool { flag.load(ordering: .acquiring) }
        func open() { flag.store(true, ordering: .releasing) }
    }
}
