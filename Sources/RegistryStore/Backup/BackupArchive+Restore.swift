import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import RegistryCore
import RegistryKeyring

extension BackupArchive {
    /// What a payload holds, read from the payload itself.
    public struct PayloadReport: Sendable, Equatable {
        /// `PRAGMA integrity_check`: "ok" when sound.
        public var integrity: String
        public var applicationID: Int32
        public var subjects: Int
        public var kekVersions: [Int]
        /// The erasure-ledger state the payload's database recorded at its last erasure.
        public var erasureLedger: ErasureLedger.State
    }

    /// A payload comes from a file that nothing authenticates (its checksum is in its own
    /// header): it is opened with `trusted_schema = OFF` and never used until `checkSchema`
    /// passed.
    static func untrustedConfiguration(readonly: Bool) -> Configuration {
        var configuration = Configuration()
        configuration.readonly = readonly
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA trusted_schema = OFF")
            if !readonly {
                try db.execute(sql: "PRAGMA secure_delete = ON")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
        }
        return configuration
    }

    /// Refuses a payload whose schema is not exactly the one anonreg's own migrations build: its
    /// migrations must be a prefix of the known ones, and `sqlite_master` (types, names, tables,
    /// SQL) must equal that of a fresh database migrated as far. So no trigger, view or extra
    /// object planted in a backup (say, a trigger copying wrapped DEKs of erased subjects
    /// elsewhere) ever runs.
    static func checkSchema(_ db: Database, path: String) throws {
        guard try db.tableExists("grdb_migrations") else {
            throw StorageError.unusableDatabase(path: path, reason: "the payload records no schema migrations")
        }
        let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
        let known = Schema.migrationNames
        guard let last = applied.last, applied == Array(known.prefix(applied.count)) else {
            let unknown = applied.filter { !known.contains($0) }
            throw StorageError.unusableDatabase(
                path: path,
                reason: "its schema migrations are not anonreg's (\(unknown.isEmpty ? "out of order" : "unknown: " + unknown.joined(separator: ", ")))")
        }
        let fresh = try DatabaseQueue()
        try Schema.migrator(keyring: nil).migrate(fresh, upTo: last)
        let expected = try fresh.read { try schemaObjects($0) }
        let actual = try schemaObjects(db)
        guard actual == expected else {
            let extra = Set(actual).subtracting(expected).map { $0.components(separatedBy: "\u{1F}").prefix(2).joined(separator: " ") }.sorted()
            throw StorageError.unusableDatabase(
                path: path,
                reason: "its schema differs from anonreg's \(last) schema (unexpected: \(extra.isEmpty ? "a missing or altered object" : extra.joined(separator: ", "))); refusing to open it")
        }
    }

    static func schemaObjects(_ db: Database) throws -> [String] {
        try Row.fetchAll(db, sql: "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").map { row in
            [row["type"] as String? ?? "", row["name"] as String? ?? "", row["tbl_name"] as String? ?? "", row["sql"] as String? ?? ""]
                .joined(separator: "\u{1F}")
        }
    }

    /// Opens an extracted payload read-only and checks it (its schema first: see `checkSchema`).
    public static func inspect(payload path: String) throws(StorageError) -> PayloadReport {
        do {
            let queue = try DatabaseQueue(path: path, configuration: untrustedConfiguration(readonly: true))
            defer { try? queue.close() }
            return try queue.read { db in
                let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
                let id = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                guard id == Schema.applicationID, try db.tableExists("subject") else {
                    return PayloadReport(integrity: integrity, applicationID: id, subjects: 0, kekVersions: [], erasureLedger: .empty)
                }
                try checkSchema(db, path: path)
                return PayloadReport(
                    integrity: integrity, applicationID: id,
                    subjects: try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0,
                    kekVersions: try Int.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY kek_version"),
                    erasureLedger: try SQLiteRegistryStore.ledgerHead(db))
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw .unusableDatabase(path: path, reason: "the payload is not a readable SQLite database (\((error as? DatabaseError)?.message ?? "\(error)"))")
        }
    }

    /// The erasure-ledger state recorded in the database at `path` (empty when there is no
    /// database or no erasure yet). Read-only.
    public static func recordedLedgerHead(database path: String) throws(StorageError) -> ErasureLedger.State {
        guard FileManager.default.fileExists(atPath: path) else { return .empty }
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            return try queue.read { db in try SQLiteRegistryStore.ledgerHead(db) }
        } catch {
            throw .unusableDatabase(path: path, reason: "it cannot be read (\((error as? DatabaseError)?.message ?? "\(error)"))")
        }
    }

    /// anonreg's application_id ("ANRG").
    public static var expectedApplicationID: Int32 { Schema.applicationID }

    /// What the database at `path` holds (subjects, audit entries, counter rows); nil when there
    /// is no database there yet. Read-only. A registry with no subject may still hold an audit
    /// log and statistics worth keeping.
    /// `counters` includes the differential-privacy budget and its releases
    /// (`privacy_budget`, `stats_release`): a restore replaces them with the backup's.
    public static func contents(database path: String) throws(StorageError) -> (subjects: Int, auditEntries: Int, counters: Int)? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            return try queue.read { db in
                func count(_ table: String) throws -> Int {
                    try db.tableExists(table) ? (try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0) : 0
                }
                return (try count("subject"), try count("audit_entry"),
                        try count("counter") + count("privacy_budget") + count("stats_release"))
            }
        } catch {
            throw .unusableDatabase(path: path, reason: "it cannot be read (\((error as? DatabaseError)?.message ?? "\(error)"))")
        }
    }

    /// Erases from an extracted payload every subject whose ledger reference is in `erased` (the
    /// erasure ledger): its rows and its audit links deleted with `secure_delete`, in WAL mode, then
    /// `wal_checkpoint(TRUNCATE)`, exactly as a live erasure; then back to a rollback journal, so
    /// the file stands alone (no -wal or -shm beside it). Returns how many were erased and how
    /// many subjects remain.
    ///
    /// The payload's schema is checked first (`checkSchema`), and `ledger` must extend the
    /// ledger state the payload recorded; the restored copy then records `ledger`'s state, so
    /// the daemon started on it checks the ledger as it is now.
    public static func applyErasures(payload path: String, keyring: Keyring, ledger: ErasureLedger.Contents) throws(StorageError) -> (erased: Int, remaining: Int) {
        var configuration = untrustedConfiguration(readonly: false)
        configuration.foreignKeysEnabled = true
        let erased = Set(ledger.references)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            let count = try queue.writeWithoutTransaction { db -> (Int, Int) in
                try checkSchema(db, path: path)
                let recorded = try SQLiteRegistryStore.ledgerHead(db)
                do { try ErasureLedger(keyring: keyring).check(ledger, extends: recorded) } catch {
                    throw StorageError.unusableDatabase(path: path, reason: "the backup recorded more erasures than the ledger holds: \(error)")
                }
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                let rows = try Row.fetchAll(db, sql: "SELECT id, sid FROM subject")
                let ledgerFile = ErasureLedger(keyring: keyring)
                var doomed: [(id: Int64, sid: [UInt8])] = []
                for row in rows {
                    let sid = Array(row["sid"] as Data)
                    if erased.contains(try ledgerFile.reference(sid: sid)) { doomed.append((row["id"], sid)) }
                }
                // As a live erasure does: the subject's audit links go too (a backup taken before
                // schema v2-audit-subject-commitments has no audit_subject table).
                let auditLinks = try db.tableExists("audit_subject")
                try db.inTransaction {
                    for subject in doomed {
                        if auditLinks {
                            try SQLiteRegistryStore.unlinkAudit(db, reference: try SubjectKeys.auditReference(sid: subject.sid, keyring: keyring))
                        }
                        try SQLiteRegistryStore.delete(db, subjectID: subject.id)
                    }
                    if try ledger.state.count > 0 && db.tableExists("erasure_ledger_head") {
                        try SQLiteRegistryStore.recordLedgerHead(db, ledger.state)
                    }
                    return .commit
                }
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
                return (doomed.count, try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0)
            }
            return count
        } catch {
            throw StorageError.from(error, path: path)
        }
    }

    /// Puts a prepared payload in place of the database at `target`: a stale `-wal` and `-shm` of
    /// the old file are removed first (SQLite would replay them onto the new one), then the
    /// payload is renamed over `target` and the directory fsynced.
    public static func install(payload: String, as target: String) throws(StorageError) {
        for suffix in ["-wal", "-shm", "-journal"] where unlink(target + suffix) != 0 && errno != ENOENT {
            throw .database(reason: "cannot remove \(target + suffix): \(String(cString: strerror(errno)))")
        }
        guard rename(payload, target) == 0 else {
            throw .database(reason: "cannot rename \(payload) to \(target): \(String(cString: strerror(errno)))")
        }
        for suffix in ["-wal", "-shm", "-journal"] { unlink(payload + suffix) }
        let directory = (target as NSString).deletingLastPathComponent
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }
}

/// Whether a process has the database open. SQLite in WAL mode keeps a shared lock on the
/// "dead man switch" byte of the `-shm` file (offset 128: `UNIX_SHM_DMS` in os_unix.c) for as long
/// as a connection is open, so an exclusive-lock probe there (`F_GETLK`) says whether the daemon,
/// or anything else, holds the database. Offline restores refuse to run while it does.
public enum DatabaseInUse {
    static let deadManSwitchOffset: off_t = 128

    public static func check(_ path: String) -> Bool {
        // Any error but "no -shm file" counts as in use: a restore must not guess.
        let fd = open(path + "-shm", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return errno != ENOENT }
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = deadManSwitchOffset
        lock.l_len = 1
        guard fcntl(fd, F_GETLK, &lock) == 0 else { return true }
        return lock.l_type != Int16(F_UNLCK)
    }
}
