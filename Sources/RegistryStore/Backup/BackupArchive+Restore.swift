import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring

#if canImport(Glibc)
    import Glibc
#endif

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
        /// The schema migrations the payload records.
        public var migrations: [String] = []
        /// Its last audit entry (number, hash) and the time of its newest audit entry.
        public var auditLog: BackupArchive.AuditHead? = nil
        public var newestAuditTime: String? = nil
    }

    /// The facts of `header` that the payload contradicts (docs/CRYPTO.md §Database backups):
    /// subjects, KEK versions, ledger state, migrations, application_id, the end of the audit log
    /// (format 2), and the creation time, which cannot be older than the newest audit entry.
    public static func disagreements(_ header: Header, _ payload: PayloadReport) -> [String] {
        var differ: [String] = []
        if header.subjects != payload.subjects { differ.append("subjects") }
        if header.kekVersions != payload.kekVersions { differ.append("KEK versions") }
        let ledger = LedgerHead(entries: payload.erasureLedger.count, head: Hex.encode(payload.erasureLedger.head))
        if let recorded = header.erasureLedger, recorded != ledger { differ.append("erasure ledger state") }
        if header.migrations != payload.migrations { differ.append("migrations") }
        if header.applicationID != payload.applicationID { differ.append("application_id") }
        if header.format >= 2, header.auditLog != payload.auditLog { differ.append("end of the audit log") }
        let formatter = ISO8601DateFormatter()
        if let created = formatter.date(from: header.createdAt) {
            if let newest = payload.newestAuditTime.flatMap({ formatter.date(from: $0) }), newest > created.addingTimeInterval(1) {
                differ.append("creation time (older than the payload's newest audit entry)")
            }
        } else {
            differ.append("creation time (not an ISO 8601 time)")
        }
        return differ
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
                reason:
                    "its schema migrations are not anonreg's (\(unknown.isEmpty ? "out of order" : "unknown: " + unknown.joined(separator: ", ")))"
            )
        }
        let fresh = try DatabaseQueue()
        try Schema.migrator(keyring: nil).migrate(fresh, upTo: last)
        let expected = try fresh.read { try schemaObjects($0) }
        let actual = try schemaObjects(db)
        guard actual == expected else {
            let extra = Set(actual).subtracting(expected).map { $0.components(separatedBy: "\u{1F}").prefix(2).joined(separator: " ") }
                .sorted()
            throw StorageError.unusableDatabase(
                path: path,
                reason:
                    "its schema differs from anonreg's \(last) schema (unexpected: \(extra.isEmpty ? "a missing or altered object" : extra.joined(separator: ", "))); refusing to open it"
            )
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
                let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
                return PayloadReport(
                    integrity: integrity, applicationID: id,
                    subjects: try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0,
                    kekVersions: try Int.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY kek_version"),
                    erasureLedger: try SQLiteRegistryStore.ledgerHead(db),
                    migrations: try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid"),
                    auditLog: last.map { AuditHead(seq: $0[0], hash: Hex.encode(Array($0[1] as Data))) },
                    newestAuditTime: try String.fetchOne(db, sql: "SELECT max(at) FROM audit_entry"))
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw .unusableDatabase(
                path: path, reason: "the payload is not a readable SQLite database (\((error as? DatabaseError)?.message ?? "\(error)"))")
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

    /// The names of anonreg's schema migrations, in order (what a restored copy has reached).
    public static var migrationNames: [String] { Schema.migrationNames }

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
                return (
                    try count("subject"), try count("audit_entry"),
                    try count("counter") + count("privacy_budget") + count("stats_release")
                )
            }
        } catch {
            throw .unusableDatabase(path: path, reason: "it cannot be read (\((error as? DatabaseError)?.message ?? "\(error)"))")
        }
    }

    /// What a restore will install: how many subjects the ledger erased again, how many remain,
    /// and the audit entry and signed checkpoint that record the restore.
    public struct RestoreOutcome: Sendable {
        public var erased: Int
        public var remaining: Int
        /// The `audit-restore` entry's number, and the number after which numbering continues.
        public var restoreSeq: Int64
        public var continuesAfter: Int64
        /// The checkpoint that signs the restore entry: the new audit anchor.
        public var checkpoint: AuditChain.Checkpoint
    }

    /// Makes an extracted payload ready to install (docs/CRYPTO.md §Database backups, "Restore"),
    /// in this order, and touches nothing outside the payload:
    /// 1. its schema must be exactly anonreg's (`checkSchema`), before any statement runs on it;
    /// 2. the ledger it carries (format 2) must extend the state its database recorded, and every
    ///    reference in it must be in `ledger` (the keys directory's ledger, already merged with
    ///    it); a format-1 backup has no ledger, and `ledger` itself must extend that state;
    /// 3. it is migrated to the current schema, with `keyring` for the keyed migrations;
    /// 4. in one transaction: every subject `ledger` names is erased (rows and audit links, as a
    ///    live erasure), the ledger's state is recorded, and the restore is appended to the audit
    ///    log, numbered after `continuesAfter` and signed by a checkpoint;
    /// 5. every remaining row must pass its integrity check (row MACs, record chains, links);
    /// 6. the WAL is checkpointed and truncated and the file goes back to a rollback journal, so
    ///    it stands alone and no erased byte stays in a WAL.
    public static func prepareRestore(
        payload path: String, keyring: Keyring, ledger: ErasureLedger.Contents, backupLedger: ErasureLedger.Contents?,
        createdAt: String, actor: String, interval: Int, continuesAfter highestIssued: Int64
    ) throws(StorageError) -> RestoreOutcome {
        var configuration = untrustedConfiguration(readonly: false)
        configuration.foreignKeysEnabled = true
        let erased = Set(ledger.references)
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }
            try queue.writeWithoutTransaction { db in try checkSchema(db, path: path) }
            let recorded = try queue.read { db in try SQLiteRegistryStore.ledgerHead(db) }
            let ledgerFile = ErasureLedger(keyring: keyring)
            if let backupLedger {
                do { try ledgerFile.check(backupLedger, extends: recorded) } catch {
                    throw StorageError.unusableDatabase(
                        path: path, reason: "the backup's own ledger does not extend what its database recorded: \(error)")
                }
                guard backupLedger.references.allSatisfy(erased.contains) else {
                    throw StorageError.unusableDatabase(path: path, reason: "the backup's ledger was not merged into the keyring's ledger")
                }
            } else {
                do { try ledgerFile.check(ledger, extends: recorded) } catch {
                    throw StorageError.unusableDatabase(
                        path: path, reason: "the backup recorded more erasures than the ledger holds: \(error)")
                }
            }
            try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
            try Schema.migrator(keyring: keyring).migrate(queue)
            try queue.read { db in try RowIntegrity.checkKeyringBinding(db, keyring: keyring, path: path) }
            let outcome = try queue.writeWithoutTransaction { db -> RestoreOutcome in
                let rows = try Row.fetchAll(db, sql: "SELECT id, sid FROM subject")
                var doomed: [(id: Int64, sid: [UInt8])] = []
                for row in rows {
                    let sid = Array(row["sid"] as Data)
                    if erased.contains(try ledgerFile.reference(sid: sid)) { doomed.append((row["id"], sid)) }
                }
                var outcome: RestoreOutcome? = nil
                try db.inTransaction {
                    for subject in doomed {
                        try SQLiteRegistryStore.unlinkAudit(
                            db, reference: try SubjectKeys.auditReference(sid: subject.sid, keyring: keyring))
                        try SQLiteRegistryStore.delete(db, subjectID: subject.id)
                    }
                    if ledger.state.count > 0 { try SQLiteRegistryStore.recordLedgerHead(db, ledger.state) }
                    outcome = try SQLiteRegistryStore.appendRestoreEntry(
                        db, keyring: keyring, createdAt: createdAt, actor: actor, interval: interval, highestIssued: highestIssued,
                        reErased: doomed.count, remaining: rows.count - doomed.count)
                    return .commit
                }
                return outcome!
            }
            // Every row that stays must be what anonreg wrote.
            var after: Int64 = .min
            var failed = 0
            while true {
                let from = after
                let (scanned, last, _, _, bad, badLinks) = try queue.read { db in
                    try SQLiteRegistryStore.scanIntegrity(db, after: from, limit: 1000, keyring: keyring, erased: ErasedSubjects())
                }
                failed += bad.count + badLinks.count
                guard let last, scanned == 1000 else { break }
                after = last
            }
            guard failed == 0 else {
                throw StorageError.unusableDatabase(
                    path: path,
                    reason:
                        "\(failed) row(s) of the backup fail their integrity check (docs/CRYPTO.md §Authenticated columns): it was altered after it was taken; nothing was restored"
                )
            }
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
            }
            return outcome
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
