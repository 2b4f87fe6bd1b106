import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
import Synchronization
import Testing

@testable import RegistryStore

struct AuditStoreTests {
    static func store(_ tmp: TemporaryDirectory) throws -> SQLiteRegistryStore {
        try SQLiteRegistryStore(
            path: tmp.sub("registry.sqlite"), keyring: try Keyring.create(in: tmp.sub("keys")), auditCheckpointEvery: 10)
    }

    static func append(_ store: SQLiteRegistryStore, _ count: Int) async throws {
        for i in 0..<count {
            try await store.appendAudit(
                AuditEvent(
                    actor: "clinic a", action: "read-status", result: "ok",
                    subjectReference: i % 2 == 0 ? nil : [UInt8](repeating: UInt8(i), count: 32)))
        }
    }

    @Test func checkpointsFallEveryNEntriesAndTheLogVerifies() async throws {
        let tmp = TemporaryDirectory()
        let store = try Self.store(tmp)
        try await Self.append(store, 25)
        var report = try await store.verifyAudit()
        #expect(report.ok)
        #expect(report.checkpoints == 2)
        #expect(report.unsignedTail == 5)
        #expect(try await store.checkpointAudit() == 25)
        report = try await store.verifyAudit()
        #expect(report.unsignedTail == 0)
    }

    /// A timed checkpoint deleted from the middle leaves no gap larger than the interval, but the
    /// next version-2 checkpoint names it: verification fails.
    @Test func aCheckpointDeletedWithinTheIntervalIsCaughtByItsSuccessor() async throws {
        let tmp = TemporaryDirectory()
        let store = try Self.store(tmp)
        for _ in 0..<3 {
            try await Self.append(store, 3)
            _ = try await store.checkpointAudit()
        }
        #expect(try await store.verifyAudit().ok)
        let r = try Binaries.runExecutable("/usr/bin/sqlite3", [tmp.sub("registry.sqlite"), "DELETE FROM audit_checkpoint WHERE seq = 6;"])
        #expect(r.status == 0)
        let report = try await store.verifyAudit()
        #expect(!report.ok)
        #expect(report.problem?.contains("which is missing") == true, "\(report)")
    }

    /// The anchor beside the keyring follows the newest checkpoint once it is committed.
    @Test func theAnchorFollowsTheNewestCheckpoint() async throws {
        let tmp = TemporaryDirectory()
        let store = try Self.store(tmp)
        try await Self.append(store, 25)
        var anchor = try #require(try AuditAnchor.read(directory: tmp.sub("keys")))
        #expect(anchor.seq == 20 && anchor.interval == 10 && anchor.previous == 10)
        _ = try await store.checkpointAudit()
        anchor = try #require(try AuditAnchor.read(directory: tmp.sub("keys")))
        #expect(anchor.seq == 25)
        #expect(tmp.mode(of: tmp.sub("keys/audit-anchor")) == 0o600)
        #expect(try await store.verifyAudit().anchorSeq == 25)
    }

    @Test func aRecordedPruneVerifiesAndTheChainContinues() async throws {
        let tmp = TemporaryDirectory()
        let store = try Self.store(tmp)
        try await Self.append(store, 30)
        let removed = try await store.pruneAudit(olderThan: "2999-01-01T00:00:00Z")
        #expect(removed == 30)
        try await Self.append(store, 3)
        let report = try await store.verifyAudit()
        #expect(report.ok, "\(report.problem ?? "")")
        #expect(report.firstSeq == 31, "the prune entry itself")
        #expect(report.entries == 4)
    }

    @Test func aDeletedPrefixIsNotAPrune() async throws {
        let tmp = TemporaryDirectory()
        let store = try Self.store(tmp)
        try await Self.append(store, 30)
        let r = try Binaries.runExecutable("/usr/bin/sqlite3", [tmp.sub("registry.sqlite"), "DELETE FROM audit_entry WHERE seq <= 20;"])
        #expect(r.status == 0)
        let report = try await store.verifyAudit()
        #expect(!report.ok)
        #expect(report.badSeq == 21)
        #expect(report.problem?.contains("no audit-prune entry") == true)
    }
}

/// The audit timestamp is built by hand (no formatter per entry); it must stay the text
/// ISO8601DateFormatter gives with `.withInternetDateTime` in UTC.
struct AuditTimestampTests {
    @Test(arguments: [0.0, 1.5, 59.999, 951_782_400.25, 1_700_000_000.9, 1_795_000_000, 4_102_444_799.5])
    func timestampMatchesTheInternetDateTimeFormat(seconds: Double) {
        let date = Date(timeIntervalSince1970: seconds)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        #expect(SQLiteRegistryStore.timestamp(date) == formatter.string(from: date))
    }
}

/// Subject commitments and the effect-and-entry transaction (docs/CRYPTO.md §Audit).
struct AuditSubjectLinkTests {
    /// Runs `body` as a request would: with a recorder naming the action; appends the entry
    /// afterwards only if the store did not append it with the effect (as the server does).
    static func asRequest<T: Sendable>(
        _ store: SQLiteRegistryStore, _ action: String, _ body: @Sendable () async throws -> T
    ) async throws -> T {
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic clinic-a", action: action))
        let value = try await AuditRecorder.$current.withValue(recorder) { try await body() }
        if !recorder.appendedWithEffect, let event = recorder.event(result: "ok") { try await store.appendAudit(event) }
        return value
    }

    @Test func anErasedSubjectsEntriesCanNoLongerBeLinked() async throws {
        let f = try StoreFixture()
        let store = f.store
        let keep = try await Self.asRequest(store, "enrol") { try await f.enrol() }
        let gone = try await Self.asRequest(store, "enrol") { try await f.enrol() }
        for i in 0..<4 {
            _ = try await Self.asRequest(store, "add-checkup") { try await f.addCheckup(gone.caseHandle, note: "n\(i)") }
            _ = try await Self.asRequest(store, "read-status") {
                try await store.subject(case: gone.caseHandle, clinic: StoreFixture.clinicA)
            }
        }
        _ = try await Self.asRequest(store, "read-status") { try await store.subject(case: keep.caseHandle, clinic: StoreFixture.clinicA) }
        let reference = gone.view.auditReference
        #expect(
            try await store.auditRecords(subjectReference: reference).map(\.action)
                == ["enrol"] + Array(repeating: ["add-checkup", "read-status"], count: 4).flatMap { $0 })
        // What links entries to the subject, as bytes: the reference and each entry's salt.
        let salts = try f.sqlite("SELECT hex(salt) FROM audit_subject WHERE subject_ref = x'\(Hex.encode(reference))'")
            .split(separator: "\n").map { try Hex.decode(String($0)) }
        #expect(salts.count == 9)
        let traces = [reference] + salts
        #expect(
            traces.contains { t in f.databaseFiles.contains { Bytes.contains(f.tmp.bytes(of: $0), t) } },
            "the links are on disk before erasure, so the scan below can fail")
        // The bare reference is never on the chain: only commitments are.
        #expect(try f.sqlite("SELECT count(*) FROM audit_entry WHERE subject_commit = x'\(Hex.encode(reference))'") == "0")

        try await Self.asRequest(store, "withdraw") {
            try await store.erase(case: gone.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        }

        #expect(try await store.auditRecords(subjectReference: reference).isEmpty)
        for trace in traces {
            for file in f.databaseFiles where FileManager.default.fileExists(atPath: file) {
                let found = Bytes.contains(f.tmp.bytes(of: file), trace)
                #expect(!found, "a link to the erased subject is in \(file)")
            }
        }
        // The chain is whole: 12 entries, the erasure's own among them, with a commitment and no link.
        let report = try await store.verifyAudit()
        #expect(report.ok, "\(report.problem ?? "")")
        #expect(report.entries == 12)
        #expect(
            try f.sqlite(
                "SELECT action, subject_commit IS NOT NULL, (SELECT count(*) FROM audit_subject s WHERE s.seq = e.seq) FROM audit_entry e ORDER BY seq DESC LIMIT 1"
            ) == "withdraw|1|0")
        // The other subject's access log is untouched.
        #expect(try await store.auditRecords(subjectReference: keep.view.auditReference).map(\.action) == ["enrol", "read-status"])
    }

    /// A change is opened on a reader and committed later (docs/STORAGE.md §Changes). An
    /// erasure that commits in between must not leave the change's (failed) entry linked to the
    /// erased subject.
    @Test func anUpdateRacingAnErasureLinksNothing() async throws {
        let f = try StoreFixture()
        let store = f.store
        let gone = try await Self.asRequest(store, "enrol") { try await f.enrol() }
        let reference = gone.view.auditReference
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic clinic-a", action: "add-checkup"))
        await #expect(throws: StorageError.caseNotFound) {
            try await AuditRecorder.$current.withValue(recorder) {
                let opened = try await store.openForChange(case: gone.caseHandle, clinic: StoreFixture.clinicA)
                // Between the open and the commit, the subject is erased.
                try await store.erase(case: gone.caseHandle, clinic: StoreFixture.clinicA, counters: [])
                let change = SubjectChange(
                    append: [NewRecord(kind: .checkup, plaintext: Array("late".utf8))], columns: opened.view.columns)
                try await store.commit(change, case: gone.caseHandle, clinic: StoreFixture.clinicA, ifUnchanged: opened.stamp)
            }
        }
        // The server appends the refused request's entry, as RegistryServerService does.
        if let event = recorder.event(result: "case_not_found") { try await store.appendAudit(event) }
        #expect(try f.sqlite("SELECT count(*) FROM audit_subject WHERE subject_ref = x'\(Hex.encode(reference))'") == "0")
        #expect(try await store.auditRecords(subjectReference: reference).isEmpty)
    }

    /// A read's entry is appended after the read (RegistryServerService). An erasure that
    /// commits in between must not leave that entry linked to the erased subject.
    @Test func aReadWhoseSubjectIsErasedBeforeItsEntryLinksNothing() async throws {
        let f = try StoreFixture()
        let store = f.store
        let gone = try await Self.asRequest(store, "enrol") { try await f.enrol() }
        let reference = gone.view.auditReference
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic clinic-a", action: "read-status"))
        _ = try await AuditRecorder.$current.withValue(recorder) {
            try await store.subject(case: gone.caseHandle, clinic: StoreFixture.clinicA)
        }
        try await Self.asRequest(store, "withdraw") {
            try await store.erase(case: gone.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        }
        let event = try #require(recorder.event(result: "ok"))
        try await store.appendAudit(event)
        #expect(try f.sqlite("SELECT count(*) FROM audit_subject WHERE subject_ref = x'\(Hex.encode(reference))'") == "0")
        #expect(try await store.auditRecords(subjectReference: reference).isEmpty)
        #expect(try await store.verifyAudit().ok)
    }

    @Test func aWriteAndItsEntryCommitTogether() async throws {
        let f = try StoreFixture()
        let store = f.store
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic clinic-a", action: "enrol"))
        let receipt = try await AuditRecorder.$current.withValue(recorder) { try await f.enrol() }
        #expect(recorder.appendedWithEffect)
        #expect(try f.sqlite("SELECT actor, action, result FROM audit_entry") == "clinic clinic-a|enrol|ok")

        // A commit refused inside its transaction (the case changed since it was opened) leaves
        // neither effect nor entry.
        let refused = AuditRecorder(AuditRecorder.Action(actor: "clinic clinic-a", action: "add-checkup"))
        let opened = try await store.openForChange(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
        _ = try await Self.asRequest(store, "add-checkup") { try await f.addCheckup(receipt.caseHandle, note: "first") }
        await #expect(throws: StorageError.subjectChanged) {
            try await AuditRecorder.$current.withValue(refused) {
                try await store.commit(
                    SubjectChange(append: [NewRecord(kind: .checkup, plaintext: Array("late".utf8))], columns: opened.view.columns),
                    case: receipt.caseHandle, clinic: StoreFixture.clinicA, ifUnchanged: opened.stamp)
            }
        }
        #expect(!refused.appendedWithEffect)
        #expect(try f.sqlite("SELECT count(*) FROM audit_entry") == "2")
        #expect(try await store.subject(case: receipt.caseHandle, clinic: StoreFixture.clinicA).records.count == 3)
        // Outside a request (no recorder), writes append nothing.
        _ = try await f.addCheckup(receipt.caseHandle, note: "x")
        #expect(try f.sqlite("SELECT count(*) FROM audit_entry") == "2")
    }
}
