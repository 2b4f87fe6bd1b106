/// Invariant 5 on PostgreSQL: a 2xx answer means the write survives a crash. That holds only if
/// the server flushes its WAL (`fsync = on`) and a commit returns only after its WAL is flushed
/// (`synchronous_commit = on`, or `remote_apply`, which waits for more). `off` returns before
/// any flush. `local` and `remote_write` flush locally but do not wait for a synchronous
/// standby's flush, so once standbys are named a failover can lose an acknowledged write; they
/// are refused whether or not standbys are named today, so that naming one later cannot weaken
/// the guarantee silently. With `full_page_writes = off` a page torn by a power cut cannot be
/// repaired from the WAL, so an acknowledged row can be lost or corrupt after an OS crash; it is
/// refused too (docs/STORAGE.md §PostgreSQL).
enum PostgresDurability {
    /// The `synchronous_commit` values that wait for at least a local flush of the commit and,
    /// with synchronous standbys, for their flush too.
    static let acceptedSynchronousCommit: Set<String> = ["on", "remote_apply"]

    /// The query the start runs, as the daemon's own session sees the settings (a per-database
    /// or per-role `ALTER ... SET` included).
    static let query = "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')"

    /// Refuses the settings unless all three are durable. Unknown values are refused too (fail
    /// closed).
    static func check(fsync: String, synchronousCommit: String, fullPageWrites: String) throws(PostgresBackendError) {
        guard fsync.lowercased() == "on" else { throw .notDurable(setting: "fsync", value: fsync) }
        guard fullPageWrites.lowercased() == "on" else { throw .notDurable(setting: "full_page_writes", value: fullPageWrites) }
        guard acceptedSynchronousCommit.contains(synchronousCommit.lowercased()) else {
            throw .notDurable(setting: "synchronous_commit", value: synchronousCommit)
        }
    }
}
