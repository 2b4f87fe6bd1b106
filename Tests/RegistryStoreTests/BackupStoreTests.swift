import Foundation
import Testing
import RegistryCore
import RegistryCrypto
import RegistryKeyring
@testable import RegistryStore
import AnonregTestSupport

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
        #expect(try FileManager.default.contentsOfDirectory(atPath: f.tmp.path).filter { $0.hasPrefix(".backup-") }.isEmpty,
                "the temporary copy is unlinked before it is sent")
        let file = f.tmp.sub("backup.anrgbak")
        try Self.write(prepared, to: file)

        // Erasures after the backup, by case and by code: both go to the ledger.
        try await f.store.erase(case: receipts[1].caseHandle, clinic: StoreFixture.clinicA, counters: [])
        try await f.store.erase(code: receipts[3].code, counters: [])
        let erased = try ErasureLedger(keyring: f.keyring).references()
        #expect(erased.count == 2)

        let payload = f.tmp.sub("restore.sqlite")
        let header = try BackupArchive.extractPayload(from: file, to: payload)
        #expect(header == prepared.header)
        let report = try BackupArchive.inspect(payload: payload)
        #expect(report.integrity == "ok" && report.subjects == 5)
        let outcome = try BackupArchive.applyErasures(payload: payload, keyring: f.keyring, erased: erased)
        #expect(outcome.erased == 2 && outcome.remaining == 3)
        #expect(!FileManager.default.fileExists(atPath: payload + "-wal"))
        // The erased subjects' notes are gone from the file's bytes too (secure_delete).
        let bytes = try Data(contentsOf: URL(fileURLWithPath: payload))
        #expect(bytes.range(of: Data("note-".utf8)) == nil, "sealed, so never in clear anyway")

        try f.store.close()
        try BackupArchive.install(payload: payload, as: f.tmp.sub("registry.sqlite"))
        let reopened = try SQLiteRegistryStore(path: f.tmp.sub("registry.sqlite"), keyring: f.keyring)
        for (i, r) in receipts.enumerated() {
            if i == 1 || i == 3 {
                await #expect(throws: StorageError.caseNotFound) { try await reopened.subject(case: r.caseHandle, clinic: StoreFixture.clinicA) }
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
}
