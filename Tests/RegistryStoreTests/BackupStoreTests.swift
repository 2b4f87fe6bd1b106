import AnonregTestSupport
import Foundation
import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import Testing

@testable import RegistryStore

/// Online backups, their checksum, and restores that apply the erasure ledger.
struct BackupStoreTests {
    /// Writes a prepared backup to `path` the way the daemon streams it.
    static func write(_ prepared: PreparedBackup, to path: String) throws {
        var bytes = prepared.headerBytes
        while true {
            let chunk = try prepared.nextChunk()
            if chunk.isEmpty { break }
            bytes += chunk
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// `prepareRestore` as a restore without a ledger section (format 1) runs it.
    static func restore(payload: String, keyring: Keyring, ledger: ErasureLedger.Contents) throws -> BackupArchive.RestoreOutcome {
        try BackupArchive.prepareRestore(
            payload: payload, keyring: keyring, ledger: ledger, backupLedger: nil,
            createdAt: "2026-12-05T00:00:00Z", actor: "test", interval: 1000, continuesAfter: 0)
    }

    @Test func erasureIsLedgeredAndARestoredCopyForgetsItAgain() async throws {
        let f = try StoreFixture()
        var receipts: [EnrolmentReceipt] = []
        for i in 0..<5 {
            let r = try await f.enrol(consent: "consent-\(i)")
            _ = try await f.addCheckup(r.caseHandle, note: "note-\(i)")
            receipts.append(r)
        }
        let prepared = try await f.store.prepareBackup(in: f.tmp.path)
        #expect(prepared.header.subjects == 5)
        #expect(prepared.header.kekVersions == [1])
        #expect(prepared.header.applicationID == BackupArchive.expectedApplicationID)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: f.tmp.path).filter { $0.hasPrefix(".backup-") }.isEmpty,
            "the temporary copy is unlinked before it is sent")
        let file = f.tmp.sub("backup.anrgbak")
        try Self.write(prepared, to: file)

        // Erasures after the backup, by case and by code: both go to the ledger.
        try await f.store.erase(case: receipts[1].caseHandle, clinic: StoreFixture.clinicA, counters: [])
        try await f.store.erase(code: receipts[3].code, counters: [])
        let ledger = try #require(try ErasureLedger(keyring: f.keyring).read())
        #expect(ledger.references.count == 2)

        let payload = f.tmp.sub("restore.sqlite")
        let extracted = try BackupArchive.extractPayload(from: file, to: payload)
        #expect(extracted.header == prepared.header)
        #expect(extracted.opened.signatureVerifies(publicKey: f.keyring.auditSigningKey.publicKey))
        #expect(
            try ErasureLedger(keyring: f.keyring).parse(bytes: try #require(extracted.ledger)).references.isEmpty,
            "the ledger section holds the ledger as it was when the backup was taken")
        let report = try BackupArchive.inspect(payload: payload)
        #expect(report.integrity == "ok" && report.subjects == 5)
        // The erased subjects' wrapped DEKs and sealed records, as the payload holds them.
        let doomed = try Self.ciphertexts(payload, of: [receipts[1], receipts[3]], keyring: f.keyring)
        #expect(doomed.count >= 4, "a wrapped DEK and at least one sealed record each")
        let outcome = try Self.restore(payload: payload, keyring: f.keyring, ledger: ledger)
        #expect(outcome.erased == 2 && outcome.remaining == 3)
        #expect(!FileManager.default.fileExists(atPath: payload + "-wal"))
        // The erased subjects' ciphertexts are gone from the file's bytes (secure_delete).
        let bytes = try Data(contentsOf: URL(fileURLWithPath: payload))
        for blob in doomed { #expect(bytes.range(of: blob) == nil) }
        #expect(try Self.ciphertexts(payload, of: [receipts[1], receipts[3]], keyring: f.keyring).isEmpty)

        try f.store.close()
        try BackupArchive.install(payload: payload, as: f.tmp.sub("registry.sqlite"))
        let reopened = try SQLiteRegistryStore(path: f.tmp.sub("registry.sqlite"), keyring: f.keyring)
        for (i, r) in receipts.enumerated() {
            if i == 1 || i == 3 {
                await #expect(throws: StorageError.caseNotFound) {
                    try await reopened.subject(case: r.caseHandle, clinic: StoreFixture.clinicA)
                }
            } else {
                let view = try await reopened.subject(case: r.caseHandle, clinic: StoreFixture.clinicA)
                #expect(view.plaintexts.contains("note-\(i)"))
            }
        }
        try reopened.close()
    }

    @Test func aDamagedBackupIsRefused() async throws {
        let f = try StoreFixture()
        try await f.enrol()
        let file = f.tmp.sub("backup.anrgbak")
        try Self.write(try await f.store.prepareBackup(in: f.tmp.path), to: file)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[bytes.count - 100] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        #expect(throws: StorageError.self) { try BackupArchive.extractPayload(from: file, to: f.tmp.sub("out.sqlite")) }
        #expect(!FileManager.default.fileExists(atPath: f.tmp.sub("out.sqlite")), "nothing is left behind")
        try Data(bytes.dropLast(10)).write(to: URL(fileURLWithPath: file))
        #expect(throws: StorageError.self) { try BackupArchive.extractPayload(from: file, to: f.tmp.sub("out.sqlite")) }
    }

    /// Wrapped DEKs and sealed records of the subjects of `receipts` in the database at `path`.
    static func ciphertexts(_ path: String, of receipts: [EnrolmentReceipt], keyring: Keyring) throws -> [Data] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try queue.read { db in
            var blobs: [Data] = []
            for r in receipts {
                let index = Data(try SubjectKeys.handleIndex(r.caseHandle, keyring: keyring))
                let ids = try Int64.fetchAll(db, sql: "SELECT subject_id FROM case_link WHERE handle_index = ?", arguments: [index])
                for id in ids {
                    blobs += try Data.fetchAll(db, sql: "SELECT wrapped_dek FROM subject WHERE id = ?", arguments: [id])
                    blobs += try Data.fetchAll(db, sql: "SELECT sealed FROM record WHERE subject_id = ?", arguments: [id])
                }
            }
            return blobs
        }
    }

    /// A payload with `sql` run in it (a planted object), and its ledger.
    static func tamperedPayload(_ sql: String) async throws -> (StoreFixture, String, ErasureLedger.Contents) {
        let f = try StoreFixture()
        let r = try await f.enrol()
        _ = try await f.enrol()
        let file = f.tmp.sub("backup.anrgbak")
        try Self.write(try await f.store.prepareBackup(in: f.tmp.path), to: file)
        try await f.store.erase(case: r.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        let payload = f.tmp.sub("restore.sqlite")
        _ = try BackupArchive.extractPayload(from: file, to: payload)
        let queue = try DatabaseQueue(path: payload)
        try Self.execute(queue, sql)
        try queue.close()
        return (f, payload, try #require(try ErasureLedger(keyring: f.keyring).read()))
    }

    @Test func aPayloadWithAPlantedTriggerIsRefusedBeforeAnythingRuns() async throws {
        let (f, payload, ledger) = try await Self.tamperedPayload(
            """
            CREATE TABLE loot (dek BLOB);
            CREATE TRIGGER keep AFTER DELETE ON subject BEGIN INSERT INTO loot VALUES (old.wrapped_dek); END;
            """)
        #expect(throws: StorageError.self) { try BackupArchive.inspect(payload: payload) }
        #expect(throws: StorageError.self) { try Self.restore(payload: payload, keyring: f.keyring, ledger: ledger) }
        let queue = try DatabaseQueue(path: payload)
        let loot = try Self.count(queue, "SELECT count(*) FROM loot")
        try queue.close()
        #expect(loot == 0, "the trigger never fired")
    }

    @Test func aPayloadWithAViewAnExtraIndexOrAnUnknownMigrationIsRefused() async throws {
        for sql in [
            "CREATE VIEW v AS SELECT * FROM subject",
            "CREATE INDEX extra ON subject(kek_version)",
            "INSERT INTO grdb_migrations (identifier) VALUES ('v9-unknown')",
        ] {
            let (f, payload, ledger) = try await Self.tamperedPayload(sql)
            #expect(throws: StorageError.self, "\(sql)") { try BackupArchive.inspect(payload: payload) }
            #expect(throws: StorageError.self, "\(sql)") { try Self.restore(payload: payload, keyring: f.keyring, ledger: ledger) }
        }
    }

    @Test func theDatabaseRecordsTheLedgerHeadAndStartRefusesALedgerCutOrLost() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        let b = try await f.enrol()
        try await f.store.erase(case: a.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        try await f.store.erase(case: b.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        #expect(try f.store.checkErasureLedger().count == 2)
        let ledger = ErasureLedger(keyring: f.keyring)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: ledger.path))
        try bytes.prefix(ErasureLedger.header.utf8.count + ErasureLedger.entryBytes).write(to: URL(fileURLWithPath: ledger.path))
        #expect(throws: StorageError.self) { try f.store.checkErasureLedger() }
        unlink(ledger.path)
        #expect(throws: StorageError.self) { try f.store.checkErasureLedger() }
        try bytes.write(to: URL(fileURLWithPath: ledger.path))
        chmod(ledger.path, 0o644)
        #expect(throws: StorageError.self, "a ledger the daemon cannot append to is found at start") { try f.store.checkErasureLedger() }
        chmod(ledger.path, 0o600)
        #expect(try f.store.checkErasureLedger().count == 2)
        try f.store.close()
    }

    @Test func aRestoreRefusesALedgerShorterThanTheBackupRecorded() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        _ = try await f.enrol()
        try await f.store.erase(case: a.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        let file = f.tmp.sub("backup.anrgbak")
        let prepared = try await f.store.prepareBackup(in: f.tmp.path)
        #expect(prepared.header.erasureLedger?.entries == 1)
        try Self.write(prepared, to: file)
        let payload = f.tmp.sub("restore.sqlite")
        _ = try BackupArchive.extractPayload(from: file, to: payload)
        #expect(throws: StorageError.self) {
            try Self.restore(payload: payload, keyring: f.keyring, ledger: ErasureLedger.Contents(references: [], macs: []))
        }
    }

    /// A SIGKILL between the ledger's write (or fsync) and the erasure's commit leaves a ledger
    /// entry for a subject whose rows are still there. The subject is treated as erased: refused
    /// on every open, erased by the integrity check, and erased again by a restore of a backup
    /// from before (issue 21 §2).
    @Test func aLedgerEntryWhoseErasureNeverCommittedStillErases() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(consent: "consent-a")
        _ = try await f.enrol(consent: "consent-b")
        let file = f.tmp.sub("backup.anrgbak")
        try Self.write(try await f.store.prepareBackup(in: f.tmp.path), to: file)
        // What the killed erasure left: the ledger names A; the database still holds A.
        let sid = try #require(try await f.store.read { db in try SubjectRow.byID(db, 1)?.sid })
        let ledger = ErasureLedger(keyring: f.keyring)
        try ledger.append([try ledger.reference(sid: sid)])
        try f.store.close()
        let reopened = try SQLiteRegistryStore(path: f.tmp.sub("registry.sqlite"), keyring: f.keyring)
        #expect(try reopened.checkErasureLedger().count == 1)
        await #expect(throws: StorageError.self) { _ = try await reopened.subject(code: a.code) }
        // A restore of the backup from before erases A again.
        let payload = f.tmp.sub("restore.sqlite")
        _ = try BackupArchive.extractPayload(from: file, to: payload)
        let outcome = try Self.restore(payload: payload, keyring: f.keyring, ledger: try #require(try ledger.read()))
        #expect(outcome.erased == 1 && outcome.remaining == 1)
        // And the live store's integrity check erases it too.
        #expect(try await reopened.checkIntegrity(actor: "test").subjectsErased == 1)
        #expect(try await reopened.subjectCount() == 1)
        try reopened.close()
    }

    @Test func anyErrorButNoSuchFileCountsAsInUse() throws {
        let tmp = TemporaryDirectory()
        let db = tmp.sub("registry.sqlite")
        #expect(!DatabaseInUse.check(db), "no -shm: not in use")
        // A -shm that cannot be opened (here a symlink, refused by O_NOFOLLOW) is not proof of absence.
        symlink(tmp.sub("elsewhere"), db + "-shm")
        #expect(DatabaseInUse.check(db))
    }

    @Test func staleTemporaryCopiesAreRemoved() throws {
        let tmp = TemporaryDirectory()
        for name in [".backup-0011.sqlite", ".backup-0011.sqlite-journal", ".restore-22.sqlite", "registry.sqlite", ".other"] {
            FileManager.default.createFile(atPath: tmp.sub(name), contents: Data("x".utf8))
        }
        let removed = SQLiteRegistryStore.removeStaleCopies(in: tmp.path)
        #expect(removed == [".backup-0011.sqlite", ".backup-0011.sqlite-journal", ".restore-22.sqlite"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).sorted() == [".other", "registry.sqlite"])
    }

    static func execute(_ queue: DatabaseQueue, _ sql: String) throws {
        try queue.writeWithoutTransaction { db in try db.execute(sql: sql) }
    }

    static func count(_ queue: DatabaseQueue, _ sql: String) throws -> Int? {
        try queue.read { db in try Int.fetchOne(db, sql: sql) }
    }

    @Test func aDatabaseHoldingOnlyAPrivacyBudgetIsNotEmpty() async throws {
        let f = try StoreFixture()
        try f.store.close()
        #expect(try BackupArchive.contents(database: f.tmp.sub("registry.sqlite"))?.counters == 0)
        let queue = try DatabaseQueue(path: f.tmp.sub("registry.sqlite"))
        try Self.execute(queue, "INSERT INTO privacy_budget (month, spent_micro) VALUES ('2026-10', 500000)")
        try queue.close()
        #expect(
            try BackupArchive.contents(database: f.tmp.sub("registry.sqlite"))?.counters == 1,
            "a restore without --force must not silently roll back a spent budget")
    }
}
