import Foundation
import GRDB
import RegistryCore
import RegistryProtocol
import RegistryKeyring

extension SQLiteRegistryStore {
    /// Crypto-shredding: the subject row (and with it the wrapped DEK), its cases and its sealed
    /// records are deleted in one transaction with the counters; `secure_delete` zeroes the
    /// freed cells and the WAL is checkpointed and truncated before this returns.
    public func erase(case handle: CaseHandle, clinic: ClinicID, counters: [CounterIncrement]) async throws(StorageError) {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        try await write(checkpointAfter: true) { db in
            guard let subject = try SubjectRow.byCase(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            try Self.erase(db, subject: subject, counters: counters, keyring: keyring, recorder: recorder, checkpointEvery: every)
        }
    }

    public func erase(code: String, counters: [CounterIncrement]) async throws(StorageError) {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let codeIndex = try Self.codeIndex(code, keyring: keyring)
        try await write(checkpointAfter: true) { db in
            guard let subject = try SubjectRow.byCodeIndex(db, codeIndex) else { throw StorageError.codeNotFound }
            try Self.erase(db, subject: subject, counters: counters, keyring: keyring, recorder: recorder, checkpointEvery: every)
        }
    }

    /// The erasure transaction's body: the subject's audit links, its rows (cascading), its
    /// counters and the erasure's own audit entry, which keeps no link to the subject.
    static func erase(
        _ db: Database, subject: SubjectRow, counters: [CounterIncrement], keyring: Keyring, recorder: AuditRecorder?,
        checkpointEvery: Int
    ) throws {
        try recordErasure(sid: subject.sid, keyring: keyring)
        try unlinkAudit(db, reference: try SubjectKeys.auditReference(sid: subject.sid, keyring: keyring))
        try subject.recordReference(keyring: keyring, in: recorder)
        try delete(db, subjectID: subject.id)
        try apply(db, counters)
        recorder?.markErased()
        try auditEffect(db, recorder: recorder, checkpointEvery: checkpointEvery, keyring: keyring)
    }

    /// Appends the subject to the erasure ledger beside the keyring (docs/CRYPTO.md §Erasure
    /// ledger), fsynced, before its rows are deleted: a backup restored later erases it again.
    /// Should the transaction then fail, the ledger names a subject that still exists; a restore
    /// erases it, which is what was asked for.
    static func recordErasure(sid: [UInt8], keyring: Keyring) throws {
        let ledger = ErasureLedger(keyring: keyring)
        do { try ledger.append([try ledger.reference(sid: sid)]) } catch {
            throw StorageError.database(reason: "the erasure ledger could not be written (\(error)); nothing was erased")
        }
    }

    static func delete(_ db: Database, subjectID: Int64) throws {
        // ON DELETE CASCADE removes case_link and record rows in the same statement.
        try db.execute(sql: "DELETE FROM subject WHERE id = ?", arguments: [subjectID])
        guard db.changesCount == 1 else { throw StorageError.database(reason: "erasure deleted \(db.changesCount) subjects") }
    }
}
