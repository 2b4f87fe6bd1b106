import Foundation
import Testing
import RegistryCore
import RegistryKeyring
import RegistryProtocol
@testable import RegistryStore
import AnonregTestSupport

struct AuditStoreTests {
    static func store(_ tmp: TemporaryDirectory) throws -> SQLiteRegistryStore {
        try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: try Keyring.create(in: tmp.sub("keys")), auditCheckpointEvery: 10)
    }

    static func append(_ store: SQLiteRegistryStore, _ count: Int) async throws {
        for i in 0..<count {
            try await store.appendAudit(AuditEvent(actor: "clinic a", action: "read-status", result: "ok", subjectReference: i % 2 == 0 ? nil : [UInt8](repeating: UInt8(i), count: 32)))
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
