import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

struct StoreBasicsTests {
    @Test func durabilityPragmasAreInForce() async throws {
        let f = try StoreFixture()
        let p = try await f.store.pragmas()
        #expect(p.journalMode == "wal")
        #expect(p.synchronous == 2, "synchronous=FULL")
        #expect(p.secureDelete == 1)
        #expect(p.foreignKeys == 1)
    }

    @Test func enrolThenReadBackThroughTheCase() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        #expect(receipt.code.count == 33)
        #expect(receipt.caseHandle.text.hasPrefix("case_"))
        let view = try await f.addCheckup(receipt.caseHandle, note: "first check-up")
        #expect(view.plaintexts == ["consent", "episode", "first check-up"])
        let again = try await f.store.subject(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
        #expect(again.plaintexts == ["consent", "episode", "first check-up"])
        #expect(again.clinics == [StoreFixture.clinicA])
        #expect(again.auditReference.count == 32)
    }

    @Test func anotherClinicCannotReadTheCase() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        await #expect(throws: StorageError.caseNotFound) {
            try await f.store.subject(case: receipt.caseHandle, clinic: StoreFixture.clinicB)
        }
        await #expect(throws: StorageError.caseNotFound) {
            try await f.addCheckup(receipt.caseHandle, note: "intrusion", clinic: StoreFixture.clinicB)
        }
        await #expect(throws: StorageError.caseNotFound) {
            try await f.store.erase(case: receipt.caseHandle, clinic: StoreFixture.clinicB, counters: [])
        }
        #expect(try await f.store.subjectCount() == 1)
    }

    @Test func linkingByCodeSharesTheHistory() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        _ = try await f.addCheckup(receipt.caseHandle, note: "seen at A")
        let linkRecord = NewRecord(kind: .link, plaintext: Array("linked by B".utf8))
        let handleB = try await f.store.link(
            code: receipt.code.lowercased(), clinic: StoreFixture.clinicB, record: linkRecord, counters: [])
        #expect(handleB != receipt.caseHandle)
        let viewB = try await f.store.subject(case: handleB, clinic: StoreFixture.clinicB)
        #expect(viewB.plaintexts.contains("seen at A"))
        #expect(viewB.clinics == [StoreFixture.clinicA, StoreFixture.clinicB])
        // Linking again hands back the same case.
        let again = try await f.store.link(code: receipt.code, clinic: StoreFixture.clinicB, record: linkRecord, counters: [])
        #expect(again == handleB)
        // B's handle is still useless to A.
        await #expect(throws: StorageError.caseNotFound) { try await f.store.subject(case: handleB, clinic: StoreFixture.clinicA) }
    }

    @Test func unknownAndMalformedCodesLookTheSame() async throws {
        let f = try StoreFixture()
        try await f.enrol()
        let unknown = try PatientCode.generate().formatted()
        await #expect(throws: StorageError.codeNotFound) { try await f.store.subject(code: unknown) }
        await #expect(throws: StorageError.codeNotFound) { try await f.store.subject(code: "not a code") }
    }

    @Test func reissuedCodeReplacesTheOldOne() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        let newCode = try await f.store.reissueCode(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
        #expect(newCode != receipt.code)
        await #expect(throws: StorageError.codeNotFound) { try await f.store.subject(code: receipt.code) }
        let view = try await f.store.subject(code: newCode)
        #expect(view.plaintexts.first == "consent")
    }

    // A stale commit writes nothing: ConformanceWrites.aStaleCommitWritesNothing, for every backend.

    @Test func countersCommitWithTheirEvent() async throws {
        let f = try StoreFixture()
        try await f.enrol(counters: [StoreFixture.counter("enrolled")])
        try await f.enrol(counters: [StoreFixture.counter("enrolled")])
        try await f.store.count([StoreFixture.counter("anonymous-episode", clinic: StoreFixture.clinicB)])
        let rows = try await f.store.counters(from: Month("2026-11")!, to: Month("2026-11")!)
        #expect(rows.map(\.value) == [2, 1])
        #expect(rows.map(\.key.metric) == ["enrolled", "anonymous-episode"])
        #expect(rows.map(\.key.clinic) == [StoreFixture.clinicA, StoreFixture.clinicB])
    }

    @Test func dueListIsPerClinicAndOrdered() async throws {
        let f = try StoreFixture()
        let late = try await f.enrol(due: "2027-03-01")
        let soon = try await f.enrol(due: "2027-01-15")
        try await f.enrol(due: nil)
        try await f.enrol(clinic: StoreFixture.clinicB, due: "2027-01-01")
        let due = try await f.store.casesDue(clinic: StoreFixture.clinicA, before: Day("2027-12-31")!)
        #expect(due.map(\.caseHandle) == [soon.caseHandle, late.caseHandle])
        #expect(due.map(\.nextDue.description) == ["2027-01-15", "2027-03-01"])
        let strict = try await f.store.casesDue(clinic: StoreFixture.clinicA, before: Day("2027-01-15")!)
        #expect(strict.isEmpty, "before is strict")
    }

    /// 64 check-ups on 64 cases at once share commits. (Check-ups racing on one case commit one
    /// at a time: each loses to the one before and is decided again; OptimisticUpdateTests.)
    @Test func concurrentWritesAreGroupCommitted() async throws {
        let f = try StoreFixture()
        var receipts: [EnrolmentReceipt] = []
        for _ in 0..<64 { receipts.append(try await f.enrol()) }
        let handles = receipts.map(\.caseHandle)
        let before = f.store.writer.commitCount
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, handle) in handles.enumerated() {
                group.addTask { _ = try await f.addCheckup(handle, note: "n\(i)") }
            }
            try await group.waitForAll()
        }
        let commits = f.store.writer.commitCount - before
        for handle in handles {
            let view = try await f.store.subject(case: handle, clinic: StoreFixture.clinicA)
            #expect(view.records(of: .checkup).count == 1)
        }
        #expect(commits < 64, "64 concurrent writes took \(commits) commits")
    }

    @Test func enrolmentWithARepeatedLinkageValueAnswersTheSame() async throws {
        let f = try StoreFixture()
        let linkage = [UInt8](repeating: 0x5a, count: 64)
        let first = try await f.enrol(linkage: linkage)
        let second = try await f.enrol(linkage: linkage)
        #expect(first.view.records.count == second.view.records.count)
        #expect(first.view.columns == second.view.columns)
        #expect(try await f.store.subjectCount() == 2)
    }
}

/// Bulk writes (rewrap batches) commit alone, and whatever was queued while one ran commits
/// before the next bulk write: a request waits for at most one bulk transaction.
struct BulkWriteLaneTests {
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [String] = []
        func add(_ entry: String) {
            lock.lock()
            entries.append(entry)
            lock.unlock()
        }
        var all: [String] {
            lock.lock()
            defer { lock.unlock() }
            return entries
        }
    }

    @Test func writesQueuedDuringABulkWriteCommitBeforeTheNextOne() async throws {
        let f = try StoreFixture()
        let writer = f.store.writer
        let log = Log()
        let bulkBefore = writer.bulkCommitCount
        let commitsBefore = writer.commitCount
        /// Polls until `condition` holds (at most 20 s; the test then fails on the order).
        @Sendable func waitUntil(_ condition: () -> Bool) {
            for _ in 0..<20_000 where !condition() { usleep(1000) }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // bulk-1 holds the writer until two bulk writes and three request writes queue.
                try await writer.write(bulk: true) { _ in
                    log.add("bulk-1")
                    waitUntil { writer.waiting == (3, 2) }
                }
            }
            /// The same in the test body, without blocking a cooperative thread.
            func waitUntilAsync(_ condition: () -> Bool) async throws {
                for _ in 0..<20_000 where !condition() { try await Task.sleep(for: .milliseconds(1)) }
            }
            try await waitUntilAsync { writer.bulkCommitCount > bulkBefore || !log.all.isEmpty }
            for name in ["bulk-2", "bulk-3"] {
                group.addTask { try await writer.write(bulk: true) { _ in log.add(name) } }
            }
            try await waitUntilAsync { writer.waiting.bulk == 2 }
            for i in 1...3 {
                group.addTask { try await writer.write { _ in log.add("request-\(i)") } }
            }
            try await group.waitForAll()
        }
        let order = log.all
        #expect(order.first == "bulk-1")
        let requests = order.indices.filter { order[$0].hasPrefix("request-") }
        let bulk2 = try #require(order.firstIndex(of: "bulk-2"))
        let bulk3 = try #require(order.firstIndex(of: "bulk-3"))
        #expect(requests.count == 3)
        #expect(requests.allSatisfy { $0 < bulk2 && $0 < bulk3 }, "queued request writes go before the next bulk write: \(order)")
        #expect(writer.bulkCommitCount - bulkBefore == 3, "each bulk write is a transaction of its own")
        #expect(writer.commitCount - commitsBefore == 4, "bulk-1, the three requests together, bulk-2, bulk-3")
    }
}

/// A change is opened on a reader, decided off the writer, and committed only if the subject is
/// unchanged; a commit that lost a race opens and decides again, so concurrent changes of one
/// case each see every earlier one.
struct OptimisticUpdateTests {
    @Test func concurrentUpdatesOfOneCaseEachDecideOnTheCurrentRecords() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<24 {
                group.addTask {
                    try await StoreFixture.change(f.store, receipt.caseHandle) { view in
                        // The record says how many records its decision saw.
                        SubjectChange(
                            append: [NewRecord(kind: .checkup, plaintext: Array("after \(view.records.count)".utf8))],
                            columns: view.columns)
                    }
                }
            }
            try await group.waitForAll()
        }
        let view = try await f.store.subject(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
        let notes = view.records.filter { $0.kind == .checkup }.map { String(decoding: $0.plaintext, as: UTF8.self) }
        #expect(notes == (2..<26).map { "after \($0)" }, "each decision saw every earlier record")
    }

    /// Every kind of change the stamp must see: a record appended, the clear columns saved, a
    /// case link added. Each one refuses a commit opened before it.
    @Test func theStampSeesEveryKindOfChange() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        let handle = receipt.caseHandle
        func refusesAfter(_ what: String, _ change: () async throws -> Void) async throws {
            let opened = try await f.store.openForChange(case: handle, clinic: StoreFixture.clinicA)
            try await change()
            await #expect(throws: StorageError.subjectChanged, "after \(what)") {
                try await f.store.commit(
                    SubjectChange(columns: opened.view.columns), case: handle, clinic: StoreFixture.clinicA, ifUnchanged: opened.stamp)
            }
        }
        try await refusesAfter("a record") { try await f.addCheckup(handle, note: "n") }
        try await refusesAfter("new columns") {
            try await StoreFixture.change(f.store, handle) { view in
                var columns = view.columns
                columns.nextDue = Day("2030-01-01")
                return SubjectChange(columns: columns)
            }
        }
        try await refusesAfter("a link to another clinic") {
            _ = try await f.store.link(
                code: receipt.code, clinic: StoreFixture.clinicB, record: NewRecord(kind: .link, plaintext: Array("b".utf8)), counters: [])
        }
        try await refusesAfter("a new patient code") {
            _ = try await f.store.reissueCode(case: handle, clinic: StoreFixture.clinicA)
        }
        // And an unchanged subject commits.
        let opened = try await f.store.openForChange(case: handle, clinic: StoreFixture.clinicA)
        try await f.store.commit(
            SubjectChange(columns: opened.view.columns), case: handle, clinic: StoreFixture.clinicA, ifUnchanged: opened.stamp)
    }
}
