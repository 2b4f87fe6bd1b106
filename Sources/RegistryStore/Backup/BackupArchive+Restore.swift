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
    }

    /// Opens an extracted payload read-only and checks it.
    public static func inspect(payload path: String) throws(StorageError) -> PayloadReport {
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            return try queue.read { db in
                let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ")
                let id = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                guard id == Schema.applicationID, try db.tableExists("subject") else {
                    return PayloadReport(integrity: integrity, applicationID: id, subjects: 0, kekVersions: [])
                }
                return PayloadReport(
                    integrity: integrity, applicationID: id,
                    subjects: try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0,
                    kekVersions: try Int.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY kek_version"))
            }
        } catch {
            throw .unusableDatabase(path: path, reason: "the payload is not a readable SQLite database (\((error as? DatabaseError)?.message ?? "\(error)"))")
        }
    }

    /// anonreg's application_id ("ANRG").
    public static var expectedApplicationID: Int32 { Schema.applicationID }

    /// What the database at `path` holds (subjects, audit entries, counter rows); nil when there
    /// is no database there yet. Read-only. A registry with no subject may still hold an audit
    /// log and statistics worth keeping.
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
                return (try count("subject"), try count("audit_entry"), try count("counter"))
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
    public static func applyErasures(payload path: String, keyring: Keyring, erased: Set<[UInt8]>) throws(StorageError) -> (erased: Int, remaining: Int) {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            let count = try queue.writeWithoutTransaction { db -> (Int, Int) in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                let rows = try Row.fetchAll(db, sql: "SELECT id, sid FROM subject")
                let ledger = ErasureLedger(keyring: keyring)
                var doomed: [(id: Int64, sid: [UInt8])] = []
                for row in rows {
                    let sid = Array(row["sid"] as Data)
                    if erased.contains(try ledger.reference(sid: sid)) { doomed.append((row["id"], sid)) }
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
        let fd = open(path + "-shm", O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = deadManSwitchOffset
        lock.l_len = 1
        guard fcntl(fd, F_GETLK, &lock) == 0 else { return false }
        return lock.l_type != Int16(F_UNLCK)
    }
}
