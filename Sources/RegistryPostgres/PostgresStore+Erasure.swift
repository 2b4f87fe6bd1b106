import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

/// Erasure on PostgreSQL (docs/STORAGE.md §Erasure on PostgreSQL; docs/CRYPTO.md §Erasure
/// ledger).
///
/// Crypto-shredding as on SQLite: the subject row (and with it the wrapped DEK), its cases and
/// its sealed records are deleted in one transaction with the counters and the audit entry, and
/// the subject's ledger reference is appended, fsynced, to the ledger file beside this node's
/// keyring before the transaction commits.
///
/// With several nodes, each node keeps its own ledger file, and the database lists every
/// node's erasures (`erasure_ledger_entry`). Each node merges that list into its file when it
/// starts (`prepareErasureLedger`) and then every few minutes (`retryPendingErasureCleanup`),
/// and pushes back any reference the list lacks. So a database restored from a dump or base
/// backup older than an erasure gets the erasure back from any node's file, and a node's file
/// that was lost or cut short gets every erasure back from the database: one of the two must
/// survive, not both.
extension PostgresStore {
    public func erase(case handle: CaseHandle, clinic: ClinicID, counters: [CounterIncrement]) async throws(StorageError) {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        let logger = self.logger
        let reference = try await write { connection in
            guard let subject = try await self.subject(connection, handleIndex: handleIndex, clinic: clinic, forUpdate: true) else {
                throw StorageError.caseNotFound
            }
            return try await self.erase(
                connection, subject: subject, counters: counters, recorder: recorder, checkpointEvery: every, logger: logger)
        }
        // Refused as erased once committed (`erase` below).
        if let reference { erased.insert(contentsOf: [reference]) }
    }

    public func erase(code: String, counters: [CounterIncrement]) async throws(StorageError) {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        let logger = self.logger
        let reference = try await write { connection in
            guard let subject = try await self.subject(connection, codeIndex: codeIndex, forUpdate: true) else {
                throw StorageError.codeNotFound
            }
            return try await self.erase(
                connection, subject: subject, counters: counters, recorder: recorder, checkpointEvery: every, logger: logger)
        }
        // Refused as erased once committed (`erase` below).
        if let reference { erased.insert(contentsOf: [reference]) }
    }

    /// The erasure transaction's body: the ledger (unless `ledger` is false: an integrity
    /// erasure, which must not outlast a restore), the subject's audit links, its rows
    /// (cascading), its counters and the erasure's own audit entry, which keeps no link to it.
    /// Returns the ledger reference, which the caller adds to `erased` once the transaction
    /// committed: added before, a transaction run again after a deadlock would find its own
    /// subject refused as erased.
    @discardableResult
    func erase(
        _ connection: PostgresConnection, subject: PostgresSubjectRow, counters: [CounterIncrement], recorder: AuditRecorder?,
        checkpointEvery: Int, ledger: Bool = true, logger: Logger
    ) async throws -> [UInt8]? {
        let keyring = self.keyring
        let ledgered = ledger ? try await recordErasure(connection, sid: subject.sid, keyring: keyring, logger: logger) : nil
        let reference = try subject.recordReference(keyring: keyring, in: recorder)
        try await connection.send("DELETE FROM audit_subject WHERE subject_ref = \(reference.bytea)", logger: logger)
        // ON DELETE CASCADE removes the case_link and record rows in the same statement.
        let deleted = try await connection.rows("DELETE FROM subject WHERE id = \(subject.id) RETURNING id", logger: logger)
        guard deleted.count == 1 else { throw StorageError.database(reason: "erasure deleted \(deleted.count) subjects") }
        erasedSinceVacuum.store(true, ordering: .relaxed)
        try await Self.apply(connection, counters, logger: logger)
        recorder?.markErased()
        try await Self.auditEffect(connection, recorder: recorder, checkpointEvery: checkpointEvery, keyring: keyring, logger: logger)
        return ledgered
    }

    /// Appends the subject to this node's ledger file, fsynced, before its rows are deleted, and
    /// to the database's list in the same transaction; returns its reference. Should the
    /// transaction then fail, the ledger names a subject that still exists: the next
    /// synchronisation (minutes) refuses it from then on, and the next integrity check erases
    /// it, which is what was asked for. A transaction run again after a deadlock does not
    /// append the same reference twice.
    func recordErasure(_ connection: PostgresConnection, sid: [UInt8], keyring: Keyring, logger: Logger) async throws -> [UInt8] {
        let ledger = ErasureLedger(keyring: keyring)
        let reference: [UInt8]
        do {
            reference = try ledger.reference(sid: sid)
            if !ledgerAppended.contains(reference), !erased.contains(reference) {
                try ledger.append([reference])
                ledgerAppended.insert(contentsOf: [reference])
            }
        } catch {
            throw StorageError.database(reason: "the erasure ledger could not be written (\(error)); nothing was erased")
        }
        try await connection.send(
            "INSERT INTO erasure_ledger_entry (reference) VALUES (\(reference.bytea)) ON CONFLICT (reference) DO NOTHING", logger: logger)
        return reference
    }

    /// docs/CRYPTO.md §Erasure ledger, for several nodes: this node's ledger file must open for
    /// append with every MAC right; the database's list of erasures is merged into it, and the
    /// file's references the list lacks (a database restored from before them) are added back
    /// to the list. Every reference in either is refused from then on. Returns how many
    /// references the file and the list each gained.
    @discardableResult
    public func synchroniseErasureLedger() async throws(StorageError) -> (file: Int, database: Int) {
        let ledger = ErasureLedger(keyring: keyring)
        let logger = self.logger
        let listed = try await read { connection in
            var references: [[UInt8]] = []
            for row in try await connection.rows("SELECT reference FROM erasure_ledger_entry ORDER BY seq", logger: logger) {
                references.append(try row.makeRandomAccess()[0].bytes())
            }
            return references
        }
        let before: Int
        let contents: ErasureLedger.Contents
        do {
            // Verified before anything is written: a ledger that fails is left as it is. Then
            // merged: a torn, never acknowledged last append is cut (ErasureLedger.prepareTail).
            before = try ledger.verify(extends: .empty).references.count
            contents = try ledger.merge(listed)
        } catch {
            throw .unusableDatabase(path: ledger.path, reason: "erasure ledger: \(error)")
        }
        erased.insert(contentsOf: contents.references)
        let inList = Set(listed)
        let missing = contents.references.filter { !inList.contains($0) }
        if !missing.isEmpty {
            try await write(bulk: true) { connection in
                for reference in missing {
                    try await connection.send(
                        "INSERT INTO erasure_ledger_entry (reference) VALUES (\(reference.bytea)) ON CONFLICT (reference) DO NOTHING",
                        logger: logger)
                }
            }
            logger.warning(
                "the database lacked erasures this node's ledger names: it was restored from before them; they are refused again",
                metadata: ["erasures": "\(missing.count)"])
        }
        return (contents.references.count - before, missing.count)
    }

    /// The cleanup after erasures (docs/STORAGE.md §Erasure on PostgreSQL): VACUUM of the three
    /// tables that held erased subjects, so that their dead tuples and index entries are pruned
    /// and their pages compacted, which overwrites what the compaction moves live tuples over,
    /// without waiting for autovacuum. It takes no lock that stops reads or writes. A table that
    /// another session holds for VACUUM or DDL is waited for, at most `vacuumLockWait` (an
    /// autovacuum in the way is cancelled by PostgreSQL itself): longer, the VACUUM fails, the
    /// cleanup stays pending and runs again next time. (`SKIP_LOCKED` would skip such a table
    /// and still report success.)
    /// Returns whether it succeeded (or had nothing to do).
    func vacuumAfterErasures() async -> Bool {
        guard erasedSinceVacuum.exchange(false, ordering: .relaxed) else { return true }
        let client = self.client
        let logger = self.logger
        do {
            let leased = LeaseFlag()
            try await Self.boundedLease(leased, limit: Self.leaseWait) {
                try await client.withConnection { connection in
                    guard leased.claim() else {
                        throw StorageError.unavailable(reason: "no connection to the database within \(Self.leaseWait)")
                    }
                    // VACUUM runs outside a transaction: the session's lock_timeout bounds its
                    // waits, and is put back before the connection returns to the pool. If it
                    // cannot be put back, the connection is closed rather than returned with it.
                    try await connection.send(PostgresQuery(unsafeSQL: "SET lock_timeout = '\(Self.vacuumLockWait)s'"), logger: logger)
                    var failure: (any Error)?
                    do { try await connection.send("VACUUM subject, case_link, record", logger: logger) } catch { failure = error }
                    do { try await connection.send("RESET lock_timeout", logger: logger) } catch {
                        try? await connection.close()
                        throw failure ?? error
                    }
                    if let failure { throw failure }
                }
            }
            return true
        } catch {
            erasedSinceVacuum.store(true, ordering: .relaxed)
            logger.notice(
                "the cleanup VACUUM after erasures did not complete; it runs again at the next cleanup",
                metadata: ["error": "\(PostgresErrors.statementError(error))"])
            return false
        }
    }

    /// Seconds the cleanup VACUUM waits for a table another session holds.
    static let vacuumLockWait = 10
}
