import Foundation
import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring

/// The PostgreSQL backend is a whole `RegistryBackend` (docs/STORAGE.md §The storage contract):
/// the members of the other `PostgresStore+*.swift` files meet the requirements by name; what
/// follows are the few that are about this backend's upkeep rather than about registry data.
extension PostgresStore: RegistryStorage, AuditStorage, StatisticsReleaseStorage, KeyMaintenanceStorage, BackupStorage, JobCoordination,
    StorageLifecycle
{
    /// At start: this node's ledger file is merged with every node's erasures
    /// (`synchroniseErasureLedger`).
    public func prepareErasureLedger() async throws(StorageError) {
        try await synchroniseErasureLedger()
        await checkKeyringPosition()
    }

    /// Every few minutes (with the audit checkpoint): VACUUMs after this node's erasures, and
    /// takes in the erasures and the audit checkpoints other nodes made. Returns whether the
    /// VACUUM failed (it is tried again next time). What PostgreSQL keeps whatever anonreg does
    /// (dead tuples not yet overwritten, the WAL until its segments are recycled) is documented
    /// (docs/STORAGE.md §Erasure on PostgreSQL), not retried.
    public func retryPendingErasureCleanup() async -> Bool {
        let failed = await !vacuumAfterErasures()
        do { try await synchroniseErasureLedger() } catch {
            logger.error("could not take in other nodes' erasures", metadata: ["error": "\(error)"])
        }
        await refreshAuditAnchor()
        await checkKeyringPosition()
        return failed
    }

    /// Backups of a PostgreSQL registry are the database's own (pg_dump, pg_basebackup, WAL
    /// archiving), restored with PostgreSQL's tools; the erasure ledger keeps a restore from
    /// bringing back an erased subject (docs/OPERATIONS.md §PostgreSQL). anonreg's own archive
    /// format is SQLite's file, so this is refused with what to do instead.
    public func prepareBackup() async throws(StorageError) -> any BackupStream {
        throw .database(
            reason:
                "a PostgreSQL registry is backed up with PostgreSQL's own tools (pg_dump or pg_basebackup with WAL archiving), not `anonreg backup`: docs/OPERATIONS.md §PostgreSQL"
        )
    }

    /// Closes the pool without waiting for its connections (the contract's close is synchronous;
    /// `close() async` waits).
    public func close() throws(StorageError) {
        runner.cancel()
    }

    // MARK: - Audit upkeep

    /// Drops entries older than `cutoff`, keeping the chain verifiable from the latest
    /// checkpoint older than it; the prune is itself an entry.
    ///
    /// On PostgreSQL the database is not trusted to pick that checkpoint: its signature must
    /// verify with the audit key and its hash must be the chain's entry at its seq, or nothing is
    /// pruned (a database administrator who backdates a checkpoint's `at` cannot have anonreg
    /// delete the history for them). It runs in a batch like every audited write, so the chain's
    /// lock is held before it deletes any row (PostgresGroupCommit.swift).
    public func pruneAudit(olderThan cutoff: String) async throws(StorageError) -> Int {
        let keyring = self.keyring
        let logger = self.logger
        return try await write { connection in
            guard
                let anchor = try await connection.row(
                    "SELECT max(seq) FROM audit_checkpoint WHERE at < \(cutoff)", logger: logger)?.decode(Int64?.self) ?? nil
            else { return 0 }
            try await Self.requireGenuineCheckpoint(connection, seq: anchor, keyring: keyring, logger: logger)
            // A backlog of years deletes in one statement: no statement timeout for it, and the
            // batch's put back for the writes after it (a savepoint rolled back reverts it too).
            try await connection.send("SELECT set_config('statement_timeout', '0', true)", logger: logger)
            try await connection.send("DELETE FROM audit_subject WHERE seq <= \(anchor)", logger: logger)
            try await connection.send("SELECT pg_advisory_xact_lock(\(Self.auditLockKey))", logger: logger)
            let removed = try await connection.rows("DELETE FROM audit_entry WHERE seq <= \(anchor) RETURNING seq", logger: logger).count
            try await connection.send("DELETE FROM audit_checkpoint WHERE seq < \(anchor)", logger: logger)
            try await Self.appendChained(
                connection,
                event: AuditEvent(
                    actor: "system audit", action: AuditChain.pruneAction, result: AuditChain.pruneResult(anchor: anchor),
                    subjectReference: nil),
                checkpointEvery: 0, keyring: keyring, logger: logger)
            try await connection.send(
                "SELECT set_config('statement_timeout', \(PostgresGroupCommit.statementTimeout), true)", logger: logger)
            return removed
        }
    }

    /// How many entries no checkpoint signs yet.
    public func auditUnsignedTail() async throws(StorageError) -> Int {
        let logger = self.logger
        return try await read { connection in
            let row = try await connection.row(
                "SELECT (SELECT coalesce(max(seq), 0) FROM audit_entry), (SELECT coalesce(max(seq), 0) FROM audit_checkpoint)",
                logger: logger)
            let (last, signed) = try row?.decode((Int64, Int64).self) ?? (Int64(0), Int64(0))
            return Int(max(0, last - signed))
        }
    }

    /// The time of the newest audit entry with this action and result.
    public func lastAuditTime(action: String, result: String) async throws(StorageError) -> String? {
        let logger = self.logger
        return try await read { connection in
            try await connection.row(
                "SELECT at FROM audit_entry WHERE action = \(action) AND result = \(result) ORDER BY seq DESC LIMIT 1", logger: logger
            )?.decode(String.self)
        }
    }
}
