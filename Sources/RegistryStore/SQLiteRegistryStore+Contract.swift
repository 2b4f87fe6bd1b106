import Foundation
import RegistryCore

/// SQLite's side of the storage contract beyond `RegistryStorage` (docs/STORAGE.md §The storage
/// contract). Most requirements are met by the members the other `SQLiteRegistryStore+*.swift`
/// files declare under the same names; what follows are the few the contract names after the
/// intent rather than after SQLite.
extension SQLiteRegistryStore: AuditStorage, StatisticsReleaseStorage, KeyMaintenanceStorage, BackupStorage, StorageLifecycle,
    JobCoordination
{
    /// One daemon per SQLite file: a job is due when this process last finished it `interval`
    /// ago or never (docs/STORAGE.md §Single-runner jobs).
    public func runIfDue<T: Sendable>(_ job: RegistryJob, every interval: Duration, _ body: @Sendable () async throws -> T)
        async throws -> T?
    {
        try await jobs.runIfDue(job, every: interval, body)
    }

    public func lastFinished(_ job: RegistryJob) async throws -> Double? { jobs.lastFinished(job) }

    /// The copy is taken in the database's own directory: the one place anonregd's hardened
    /// unit may write (docs/OPERATIONS.md §Backups).
    public func prepareBackup() async throws(StorageError) -> any BackupStream {
        try await prepareBackup(in: (path as NSString).deletingLastPathComponent)
    }

    public func prepareErasureLedger() throws(StorageError) {
        _ = try checkErasureLedger()
    }

    /// SQLite: the WAL truncation after an erasure that a long reader prevented.
    /// A SQLite registry is restored by `anonreg backup restore`, which records the restore
    /// itself; a file copied into place by hand is refused at start.
    public func recordDatabaseRestore(actor: String) async throws(StorageError) -> AuditChain.Checkpoint {
        throw .database(
            reason:
                "a SQLite registry is restored with `anonreg backup restore`, which records the restore itself: docs/OPERATIONS.md §Backups"
        )
    }

    public func retryPendingErasureCleanup() async -> Bool {
        await retryPendingWALTruncation()
    }
}

extension PreparedBackup: BackupStream {
    public var subjects: Int { header.subjects }
}
