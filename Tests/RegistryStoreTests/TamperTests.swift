import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

/// Sealed data moved or modified on disk fails with a typed error, never a crash.
struct TamperTests {
    @Test func aRecordMovedToAnotherSubjectFailsToOpen() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(consent: "consent-a")
        let b = try await f.enrol(consent: "consent-b")
        // Copy A's consent blob over B's consent row.
        try f.sqlite(
            """
            UPDATE record SET sealed = (SELECT sealed FROM record WHERE subject_id = 1 AND kind = 'consent')
            WHERE subject_id = 2 AND kind = 'consent';
            """)
        await #expect(throws: StorageError.tampered(what: "consent record")) {
            try await f.store.subject(case: b.caseHandle, clinic: StoreFixture.clinicA)
        }
        _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
    }

    @Test func aRecordRelabelledAsAnotherKindFailsToOpen() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        try f.sqlite("UPDATE record SET kind = 'checkup' WHERE kind = 'episode';")
        await #expect(throws: StorageError.tampered(what: "checkup record")) {
            try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
        }
    }

    @Test func aFlippedByteFailsToOpen() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        // Flip one bit of the episode blob's ciphertext (byte 30: past the 24-byte nonce).
        var blob = hex(try f.sqlite("SELECT hex(sealed) FROM record WHERE kind = 'episode';"))
        blob[30] ^= 0x01
        try f.sqlite("UPDATE record SET sealed = X'\(Hex.encode(blob))' WHERE kind = 'episode';")
        await #expect(throws: StorageError.tampered(what: "episode record")) {
            try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
        }
        // Flip it back: the record opens again, so the failure was the flipped bit.
        blob[30] ^= 0x01
        try f.sqlite("UPDATE record SET sealed = X'\(Hex.encode(blob))' WHERE kind = 'episode';")
        _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
    }

    @Test func aWrappedKeyMovedBetweenSubjectsFailsToUnwrap() async throws {
        let f = try StoreFixture()
        _ = try await f.enrol()
        let b = try await f.enrol()
        try f.sqlite("UPDATE subject SET wrapped_dek = (SELECT wrapped_dek FROM subject WHERE id = 1) WHERE id = 2;")
        await #expect(throws: StorageError.tampered(what: "data key")) {
            try await f.store.subject(case: b.caseHandle, clinic: StoreFixture.clinicA)
        }
    }

    /// The row MAC binds `kek_version` (docs/CRYPTO.md §Authenticated columns); with the MAC
    /// put right (which needs the key), the wrap's associated data still refuses it.
    @Test func aKEKVersionRelabelFailsToUnwrap() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        let rotated = try f.keyring.rotatingKEK()
        f.store.keys.replace(rotated)
        try f.sqlite("UPDATE subject SET kek_version = 2;")
        await #expect(throws: StorageError.integrity(what: "subject row")) {
            try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
        }
        let row = try #require(try await f.store.read { db in try SubjectRow.byID(db, 1) })
        try f.sqlite("UPDATE subject SET row_mac = X'\(Hex.encode(try row.expectedMAC(keyring: rotated)))';")
        await #expect(throws: StorageError.tampered(what: "data key")) {
            try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
        }
    }
}

/// A corrupt or foreign database is refused at startup and never overwritten.
struct BadDatabaseTests {
    @Test func randomBytesAreRefusedAndLeftUntouched() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let garbage = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        tmp.write(garbage, to: tmp.sub("registry.sqlite"))
        #expect(throws: StorageError.unusableDatabase(path: tmp.sub("registry.sqlite"), reason: "it is not an SQLite database")) {
            try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
        }
        #expect(tmp.bytes(of: tmp.sub("registry.sqlite")) == garbage)
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("registry.sqlite-wal")))
    }

    @Test func anotherApplicationsDatabaseIsRefusedAndLeftUntouched() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let path = tmp.sub("registry.sqlite")
        for sql in [
            "CREATE TABLE invoices(id INTEGER); INSERT INTO invoices VALUES (1);",
            "PRAGMA application_id = 1234;",
        ] {
            try? FileManager.default.removeItem(atPath: path)
            try Binaries.runExecutable("/usr/bin/sqlite3", [path, sql])
            let before = tmp.bytes(of: path)
            #expect(throws: StorageError.self) { try SQLiteRegistryStore(path: path, keyring: keyring) }
            #expect(tmp.bytes(of: path) == before)
            #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        }
    }

    @Test func aTruncatedDatabaseIsRefused() async throws {
        let f = try StoreFixture()
        for _ in 0..<50 { try await f.enrol() }
        try f.store.close()
        let path = f.tmp.sub("registry.sqlite")
        let bytes = f.tmp.bytes(of: path)
        let damaged = Array(bytes.prefix(100)) + [UInt8](repeating: 0xee, count: bytes.count - 100)
        f.tmp.write(damaged, to: path)
        do {
            let store = try SQLiteRegistryStore(path: path, keyring: f.keyring)
            _ = try await store.subjectCount()
            Issue.record("a damaged database was opened and read")
        } catch {
            guard case .unusableDatabase = error else {
                Issue.record("expected unusableDatabase, got \(error)")
                return
            }
        }
    }

    @Test func reopeningKeepsEverything() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        _ = try await f.addCheckup(receipt.caseHandle, note: "persisted")
        try f.store.close()
        let reopened = try SQLiteRegistryStore(path: f.tmp.sub("registry.sqlite"), keyring: f.keyring)
        let view = try await reopened.subject(code: receipt.code)
        #expect(view.plaintexts.contains("persisted"))
    }
}

/// Rewrap moves DEKs to the primary KEK in resumable batches.
struct RewrapTests {
    @Test func rewrapMovesEveryDEKAndKeepsRecordsReadable() async throws {
        let f = try StoreFixture()
        var receipts: [EnrolmentReceipt] = []
        for _ in 0..<25 { receipts.append(try await f.enrol()) }
        let rotated = try f.keyring.rotatingKEK()
        f.store.keys.replace(rotated)
        let newcomer = try await f.enrol()
        #expect(try await f.store.kekUsage() == [1: 25, 2: 1])
        var progress = try await f.store.rewrapBatch(limit: 10)
        #expect(progress == RewrapProgress(rewrapped: 10, remaining: 15, primaryVersion: 2))
        #expect(try await f.store.kekUsage() == [1: 15, 2: 11])
        while progress.remaining > 0 { progress = try await f.store.rewrapBatch(limit: 10) }
        #expect(try await f.store.kekUsage() == [2: 26])
        for receipt in receipts + [newcomer] {
            let view = try await f.store.subject(code: receipt.code)
            #expect(view.plaintexts.first == "consent")
        }
        // With no subject on version 1 it can be retired and destroyed; everything still reads.
        let retired = try rotated.retiringKEK(version: 1, subjectsUsingIt: try await f.store.kekUsage()[1] ?? 0)
        let destroyed = try retired.destroyingKEK(version: 1, subjectsUsingIt: 0)
        f.store.keys.replace(destroyed)
        for receipt in receipts { _ = try await f.store.subject(code: receipt.code) }
    }

    @Test func aSubjectUnderADestroyedKEKIsReportedNotCrashed() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        let rotated = try f.keyring.rotatingKEK()
        // Force the misuse the lifecycle forbids: retire with a false count.
        let destroyed = try rotated.retiringKEK(version: 1, subjectsUsingIt: 0).destroyingKEK(version: 1, subjectsUsingIt: 0)
        f.store.keys.replace(destroyed)
        await #expect(throws: StorageError.keyUnavailable(version: 1)) { try await f.store.subject(code: receipt.code) }
    }
}

func hex(_ s: String) -> [UInt8] { (try? Hex.decode(s)) ?? [] }
