import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryKeyring

#if canImport(Glibc)
    import Glibc
#endif

/// A database backup ready to be sent: the header bytes and an open, already unlinked payload
/// file (nothing is left on disk, even if the daemon dies while sending).
public final class PreparedBackup: @unchecked Sendable {
    // @unchecked: the descriptor is read by one sender at a time and closed once, in deinit.
    public let header: BackupArchive.Header
    /// Magic, header length, header JSON and its signature.
    public let headerBytes: [UInt8]
    /// The erasure ledger section, sent after the payload.
    public let ledgerBytes: [UInt8]
    private let fd: Int32
    private var ledgerSent = false

    init(header: BackupArchive.Header, headerBytes: [UInt8], ledgerBytes: [UInt8], fd: Int32) {
        self.header = header
        self.headerBytes = headerBytes
        self.ledgerBytes = ledgerBytes
        self.fd = fd
    }

    deinit { close(fd) }

    /// The whole file's length: header, payload and ledger section.
    public var totalBytes: Int64 { Int64(headerBytes.count) + header.payloadBytes + Int64(ledgerBytes.count) }

    /// The next chunk of the payload, then the ledger section (empty at the end).
    public func nextChunk(maxBytes: Int = 1 << 20) throws(StorageError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        while true {
            let n = read(fd, &buffer, maxBytes)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .database(reason: "reading the backup copy failed: \(String(cString: strerror(errno)))") }
            if n == 0, !ledgerSent {
                ledgerSent = true
                return ledgerBytes
            }
            return Array(buffer.prefix(n))
        }
    }
}

extension SQLiteRegistryStore {
    /// The copy needs as much room as the database's pages: refuse with `.storageFull` (507)
    /// before writing anything rather than fill the disk the registry itself writes to.
    static func checkFreeSpace(pool: DatabasePool, directory: String) throws {
        let needed = try pool.read { db -> Int64 in
            let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
            let size = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
            return pages * size
        }
        var fs = statvfs()
        guard statvfs(directory, &fs) == 0 else { return }
        let available = Int64(fs.f_bavail) * Int64(fs.f_frsize)
        if available < needed + (16 << 20) { throw StorageError.storageFull }
    }

    /// Removes temporary backup and restore copies (`.backup-*.sqlite`, `.restore-*.sqlite` and
    /// their -journal/-wal/-shm) left in the state directory by a daemon or CLI that died
    /// mid-way: they hold data from before later erasures. Returns the names removed. Called at
    /// daemon start, before the database is opened.
    public static func removeStaleCopies(in directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for name in names.sorted() where (name.hasPrefix(".backup-") || name.hasPrefix(".restore-")) && name.contains(".sqlite") {
            if unlink(directory + "/" + name) == 0 { removed.append(name) }
        }
        return removed
    }

    /// Takes a consistent copy of the database with SQLite's online backup API while writes go on
    /// (the copy is one read transaction: a WAL snapshot), into a temporary file in `directory`
    /// (the state directory: the only place the hardened daemon may write). The copy is put in
    /// rollback-journal mode so the payload is one self-contained file, then checksummed and
    /// unlinked; the caller streams it from the returned descriptor.
    public func prepareBackup(in directory: String, now: Date = Date()) async throws(StorageError) -> PreparedBackup {
        let pool = self.pool
        let path = self.path
        let keyring = self.keyring
        // Behind the read gate like every read while the daemon serves: the copy holds a reader
        // connection for its whole length, and a point read relies on the gate's permit for a
        // free one (`readPoint`).
        let result: Result<PreparedBackup, StorageError> = await readGate.run {
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    do {
                        continuation.resume(
                            returning: .success(try Self.snapshot(pool: pool, directory: directory, now: now, keyring: keyring)))
                    } catch {
                        continuation.resume(returning: .failure(StorageError.from(error, path: path)))
                    }
                }
            }
        }
        return try result.get()
    }

    private static func snapshot(pool: DatabasePool, directory: String, now: Date, keyring: Keyring) throws -> PreparedBackup {
        try checkFreeSpace(pool: pool, directory: directory)
        let temp = directory + "/.backup-" + Hex.encode(try Sodium.randomBytes(count: 8)) + ".sqlite"
        defer {
            for suffix in ["", "-journal", "-wal", "-shm"] { unlink(temp + suffix) }
        }
        // Created 0600 before SQLite opens it, whatever the umask.
        let created = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard created >= 0 else { throw StorageError.database(reason: "cannot create \(temp): \(String(cString: strerror(errno)))") }
        fchmod(created, 0o600)
        Glibc.close(created)
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA secure_delete = ON") }
        let copy = try DatabaseQueue(path: temp, configuration: configuration)
        try pool.backup(to: copy)
        let facts = try copy.writeWithoutTransaction { db -> (Int, [Int], Int32, [String], ErasureLedger.State, BackupArchive.AuditHead?) in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            let audit = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
            return (
                try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0,
                try Int.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY kek_version"),
                try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid"),
                try SQLiteRegistryStore.ledgerHead(db),
                audit.map { BackupArchive.AuditHead(seq: $0[0], hash: Hex.encode(Array($0[1] as Data))) }
            )
        }
        // The erasure ledger as it is now (it extends what the copy recorded: erasures are
        // appended to it before their transaction commits), every MAC checked.
        let ledgerFile = ErasureLedger(keyring: keyring)
        let ledgerBytes = try ledgerFile.serialized(try ledgerFile.read() ?? ErasureLedger.Contents(references: [], macs: []))
        try copy.close()
        let fd = open(temp, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError.database(reason: "cannot reopen \(temp)") }
        var keep = false
        defer { if !keep { Glibc.close(fd) } }
        let checksum = try Checksum(label: Label.backupPayload)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: Int64 = 0
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw StorageError.database(reason: "reading \(temp) failed") }
            if n == 0 { break }
            total += Int64(n)
            try checksum.update(buffer, count: n)
        }
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw StorageError.database(reason: "seeking \(temp) failed") }
        // The time the copy was complete: never older than any audit entry it holds.
        let formatter = ISO8601DateFormatter()
        let header = BackupArchive.Header(
            format: BackupArchive.format, createdAt: formatter.string(from: max(now, Date())), subjects: facts.0, kekVersions: facts.1,
            payloadBytes: total, payloadChecksum: Hex.encode(try checksum.finish()),
            checksumAlgorithm: BackupArchive.checksumAlgorithm, applicationID: facts.2, migrations: facts.3,
            erasureLedger: BackupArchive.LedgerHead(entries: facts.4.count, head: Hex.encode(facts.4.head)),
            ledgerBytes: Int64(ledgerBytes.count), ledgerChecksum: Hex.encode(try BackupArchive.ledgerDigest(ledgerBytes)),
            auditLog: facts.5, signedBy: Hex.encode(keyring.auditSigningKey.publicKey))
        keep = true
        return PreparedBackup(
            header: header, headerBytes: try BackupArchive.encode(header, signingKey: keyring.auditSigningKey),
            ledgerBytes: ledgerBytes, fd: fd)
    }
}
