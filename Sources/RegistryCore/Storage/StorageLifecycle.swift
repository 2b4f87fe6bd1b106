/// A backend's start, upkeep and end, as the daemon drives them.
public protocol StorageLifecycle: Sendable {
    /// Before serving: the erasure ledger beside the keyring opens for append and extends what
    /// the backend recorded, and every subject it names is refused from now on (docs/CRYPTO.md
    /// §Erasure ledger). A failure here is a keys problem: nothing may start. A backend shared
    /// by several nodes also merges the other nodes' erasures here.
    func prepareErasureLedger() async throws(StorageError)

    /// Before serving: the log reaches the signed anchor beside the keyring and agrees with it
    /// (docs/CRYPTO.md §Audit, "Anchor"). A failure here is a database problem.
    func checkAuditAnchor() async throws(StorageError)

    /// After an operator restored the backend's database with the database's own tools (on
    /// PostgreSQL, `pg_restore` or a base backup): records the restore in the audit log as a
    /// signed entry numbered after everything the registry can have issued, so that the anchor
    /// beside every node's keyring accepts the restored log (docs/CRYPTO.md §Audit, "Restores").
    /// Returns the restore's signed checkpoint. A backend whose restores anonreg makes itself
    /// (SQLite: `anonreg backup restore`) refuses.
    func recordDatabaseRestore(actor: String) async throws(StorageError) -> AuditChain.Checkpoint

    /// Upkeep after erasures, every few minutes: retries removing erased bytes that the backend's
    /// own log may still hold (SQLite: truncating the WAL a long reader kept), or takes in the
    /// erasures other nodes made (PostgreSQL). Returns whether erased bytes may remain.
    func retryPendingErasureCleanup() async -> Bool

    /// Makes everything durable in the main files and releases the backend.
    func close() throws(StorageError)
}

/// Everything the daemon needs from one storage backend.
public typealias RegistryBackend =
    RegistryStorage & AuditStorage & StatisticsReleaseStorage & KeyMaintenanceStorage & BackupStorage & StorageLifecycle
    & JobCoordination
