import Foundation
internal import GRDB
import RegistryCore
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

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
            guard let subject = try self.subject(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            try Self.erase(
                db, id: subject.id, sid: subject.sid, counters: counters, keyring: keyring, recorder: recorder,
                checkpointEvery: every, erased: self.erased)
        }
    }

    public func erase(code: String, counters: [CounterIncrement]) async throws(StorageError) {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        try await write(checkpointAfter: true) { db in
            guard let subject = try self.subject(db, codeIndex: codeIndex) else { throw StorageError.codeNotFound }
            try Self.erase(
                db, id: subject.id, sid: subject.sid, counters: counters, keyring: keyring, recorder: recorder,
                checkpointEvery: every, erased: self.erased)
        }
    }

    /// The erasure transaction's body: the erasure ledger (unless `ledger` is false: an
    /// integrity erasure, which must not outlast a restore), the subject's audit links, its rows
    /// (cascading), its counters and the erasure's own audit entry, which keeps no link to the
    /// subject.
    static func erase(
        _ db: Database, id: Int64, sid: [UInt8], counters: [CounterIncrement], keyring: Keyring, recorder: AuditRecorder?,
        checkpointEvery: Int, erased: ErasedSubjects?, ledger: Bool = true
    ) throws {
        if ledger { try recordErasure(db, sid: sid, keyring: keyring, erased: erased) }
        let reference = try SubjectKeys.auditReference(sid: sid, keyring: keyring)
        try unlinkAudit(db, reference: reference)
        recorder?.record(reference, subjectKey: sid)
        try delete(db, subjectID: id)
        try apply(db, counters)
        recorder?.markErased()
        try auditEffect(db, recorder: recorder, checkpointEvery: checkpointEvery, keyring: keyring)
    }

    /// Appends the subject to the erasure ledger beside the keyring (docs/CRYPTO.md §Erasure
    /// ledger), fsynced, before its rows are deleted: a backup restored later erases it again.
    /// Should the transaction then fail, the ledger names a subject that still exists; a restore
    /// erases it, which is what was asked for.
    /// The ledger's new state (entries, chain head) is recorded in the same transaction.
    /// The subject joins the in-memory set of erased references at once: should the transaction
    /// fail after the ledger append, the ledger names a subject that still exists, and every
    /// later open of it is refused and erases it (what was asked for), as a restore would.
    static func recordErasure(_ db: Database, sid: [UInt8], keyring: Keyring, erased: ErasedSubjects?) throws {
        let ledger = ErasureLedger(keyring: keyring)
        let state: ErasureLedger.State
        do {
            let reference = try ledger.reference(sid: sid)
            state = try ledger.append([reference])
            erased?.insert(contentsOf: [reference])
        } catch {
            throw StorageError.database(reason: "the erasure ledger could not be written (\(error)); nothing was erased")
        }
        try recordLedgerHead(db, state)
    }

    static func recordLedgerHead(_ db: Database, _ state: ErasureLedger.State) throws {
        try db.execute(
            sql:
                "INSERT INTO erasure_ledger_head (id, entries, head) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET entries = excluded.entries, head = excluded.head",
            arguments: [state.count, Data(state.head)])
    }

    /// The ledger state recorded at the last erasure (empty when none happened).
    static func ledgerHead(_ db: Database) throws -> ErasureLedger.State {
        guard try db.tableExists("erasure_ledger_head"),
            let row = try Row.fetchOne(db, sql: "SELECT entries, head FROM erasure_ledger_head WHERE id = 1")
        else { return .empty }
        guard case .int64(let entries) = (row["entries"] as DatabaseValue).storage,
            case .blob(let head) = (row["head"] as DatabaseValue).storage
        else {
            throw StorageError.integrity(what: "erasure ledger head (a cell of the wrong type)")
        }
        return ErasureLedger.State(count: Int(entries), head: Array(head))
    }

    /// docs/CRYPTO.md §Erasure ledger: at start the ledger must be openable for append (regular
    /// file, owner, mode 0600, header) and must extend the state the database recorded at its
    /// last erasure. Throws `.unusableDatabase` naming the ledger otherwise.
    /// The ledger's references are kept in memory from here on: every subject the store opens
    /// is checked against them (`ErasedSubjects`).
    public func checkErasureLedger() throws(StorageError) -> ErasureLedger.State {
        let ledger = ErasureLedger(keyring: keyring)
        do {
            let recorded = try pool.read { db in try Self.ledgerHead(db) }
            // Verified before anything is written: a ledger that fails is left exactly as it is.
            let contents = try ledger.verify(extends: recorded)
            // Then opened for append: a last entry whose newline was lost gets it back; a torn,
            // never acknowledged append is cut (ErasureLedger.prepareTail).
            let state = try ledger.append([])
            guard state == contents.state else {
                throw StorageError.unusableDatabase(path: ledger.path, reason: "erasure ledger changed while it was checked")
            }
            erased.insert(contentsOf: contents.references)
            return contents.state
        } catch {
            throw StorageError.unusableDatabase(path: ledger.path, reason: "erasure ledger: \(error)")
        }
    }

    static func delete(_ db: Database, subjectID: Int64) throws {
        // ON DELETE CASCADE removes case_link and record rows in the same statement.
        try db.execute(sql: "DELETE FROM subject WHERE id = ?", arguments: [subjectID])
        guard db.changesCount == 1 else { throw StorageError.database(reason: "erasure deleted \(db.changesCount) subjects") }
    }
}
