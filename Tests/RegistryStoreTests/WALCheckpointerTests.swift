import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import Testing

@testable import RegistryStore

/// The WAL is copied into the database off the writer's path (WALCheckpointer), and stays
/// small: SQLite's own automatic checkpoint is off on every connection.
struct WALCheckpointerTests {
    static func walBytes(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int) ?? 0
    }

    @Test func manyCommitsKeepTheWALSmall() async throws {
        let tmp = TemporaryDirectory()
        let path = tmp.sub("registry.sqlite")
        let store = try SQLiteRegistryStore(path: path, keyring: try Keyring.create(in: tmp.sub("keys")))
        let before = store.checkpointer.checkpointCount
        // 3000 commits of one audit entry each: about 3 pages each, 35 MiB of WAL if nothing
        // checkpointed it, 13 MiB if only the checkpointer did (the WAL never restarts).
        for i in 0..<3000 {
            try await store.appendAudit(AuditEvent(actor: "clinic a", action: "read-status", result: "ok \(i)", subjectReference: nil))
        }
        // Let a checkpoint still running finish.
        for _ in 0..<200 where store.checkpointer.checkpointCount - before < 3000 / WALCheckpointer.commitsPerCheckpoint {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(store.checkpointer.checkpointCount - before >= 3000 / WALCheckpointer.commitsPerCheckpoint / 2)
        let wal = Self.walBytes(path)
        #expect(wal < 8 << 20, "WAL is \(wal) bytes")
        #expect(try await store.pragmasWALAutocheckpoint() == 0)
        #expect(try await store.integrityCheck() == "ok")
        #expect(try await store.verifyAudit().ok)
        try store.close()
    }
}

extension WALCheckpointerTests {
    /// Closing the store checkpoints the WAL into the database and truncates it to zero bytes.
    @Test func closeLeavesNoWAL() async throws {
        let tmp = TemporaryDirectory()
        let path = tmp.sub("registry.sqlite")
        let store = try SQLiteRegistryStore(path: path, keyring: try Keyring.create(in: tmp.sub("keys")))
        try await withThrowingTaskGroup(of: Void.self) { group in
            // Sequential commits from 4 tasks: many checkpoints, one likely still running at close.
            for t in 0..<4 {
                group.addTask {
                    for i in 0..<1000 {
                        try await store.appendAudit(
                            AuditEvent(actor: "clinic a", action: "read-status", result: "ok \(t) \(i)", subjectReference: nil))
                    }
                }
            }
            try await group.waitForAll()
        }
        try store.close()
        #expect(Self.walBytes(path) == 0, "WAL left with \(Self.walBytes(path)) bytes")
    }
}

extension WALCheckpointerTests {
    /// The same with enrolments and reads from many tasks at once (what the daemon and the
    /// scale benchmark's fill do).
    @Test func closeAfterConcurrentWritesAndReadsLeavesNoWAL() async throws {
        let f = try StoreFixture()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<32 {
                group.addTask {
                    for _ in 0..<40 {
                        let receipt = try await f.enrol()
                        _ = try await f.store.subject(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
                    }
                }
            }
            try await group.waitForAll()
        }
        do { try f.store.close() } catch { Issue.record("close failed: \(error)") }
        #expect(
            WALCheckpointerTests.walBytes(f.databaseFiles[0]) == 0,
            "WAL left with \(WALCheckpointerTests.walBytes(f.databaseFiles[0])) bytes")
    }
}
