import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import RegistryCore
import RegistryCrypto

/// A database backup ready to be sent: the header bytes and an open, already unlinked payload
/// file (nothing is left on disk, even if the daemon dies while sending).
public final class PreparedBackup: @unchecked Sendable {
    // @unchecked: the descriptor is read by one sender at a time and closed once, in deinit.
    public let header: BackupArchive.Header
    public let headerBytes: [UInt8]
    private let fd: Int32

    init(header: BackupArchive.Header, headerBytes: [UInt8], fd: Int32) {
        self.header = header
        self.headerBytes = headerBytes
        self.fd = fd
    }

    deinit { close(fd) }

    /// The whole file's length: header and payload.
    public var totalBytes: Int64 { Int64(headerBytes.count) + header.payloadBytes }

    /// The next chunk of the payload (empty at the end).
    public func nextChunk(maxBytes: Int = 1 << 20) throws(StorageError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        while true {
            let n = read(fd, &buffer, maxBytes)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .database(reason: "reading the backup copy failed: \(String(cString: strerror(errno)))") }
            return Array(buffer.prefix(n))
        }
    }
}

extension SQLiteRegistryStore {
    /// Takes a consistent copy of the database with SQLite's online backup API while writes go on
    /// (the copy is one read transaction: a WAL snapshot), into a temporary file in `directory`
    /// (the state directory: the only place the hardened daemon may write). The copy is put in
    /// rollback-journal mode so the payload is one self-contained file, then checksummed and
    /// unlinked; the caller streams it from the returned descriptor.
    public func prepareBackup(in directory: String, now: Date = Date()) async throws(StorageError) -> PreparedBackup {
        let pool = self.pool
        let path = self.path
        let result: Result<PreparedBackup, StorageError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    continuation.resume(returning: .success(try Self.snapshot(pool: pool, directory: directory, now: now)))
                } catch {
                    continuation.resume(returning: .failure(StorageError.from(error, path: path)))
                }
            }
        }
        return try result.get()
    }

    private static func snapshot(pool: DatabasePool, directory: String, now: Date) throws -> PreparedBackup {
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
        let facts = try copy.writeWithoutTransaction { db -> (Int, [Int], Int32, [String]) in
            try db.execute(sql: "PRAGMA journal_mode = DELETE")
            return (try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0,
                    try Int.fetchAll(db, sql: "SELECT DISTINCT kek_version FROM subject ORDER BY kek_version"),
                    try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                    try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid"))
        }
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
        let formatter = ISO8601DateFormatter()
        let header = BackupArchive.Header(
            format: BackupArchive.format, createdAt: formatter.string(from: now), subjects: facts.0, kekVersions: facts.1,
            payloadBytes: total, payloadChecksum: Hex.encode(try checksum.finish()),
            checksumAlgorithm: BackupArchive.checksumAlgorithm, applicationID: facts.2, migrations: facts.3)
        keep = true
        return PreparedBackup(header: header, headerBytes: try BackupArchive.encode(header), fd: fd)
    }
}
