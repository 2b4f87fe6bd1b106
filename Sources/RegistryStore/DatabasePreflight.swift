import Foundation
internal import GRDB
import RegistryCore
import RegistryProtocol

/// Checks an existing database file before anything opens it for writing, so that a corrupt or
/// foreign file is refused without a byte of it (or a -wal beside it) being written.
enum DatabasePreflight {
    static let sqliteMagic = Array("SQLite format 3\0".utf8)

    static func check(path: String) throws(StorageError) {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }  // absent: created fresh
        defer { try? handle.close() }
        let header = (try? handle.read(upToCount: 100)).map { Array($0) } ?? []
        if header.isEmpty { return }  // an empty file is an empty database
        guard header.count == 100, Array(header.prefix(16)) == sqliteMagic else {
            throw .unusableDatabase(path: path, reason: "it is not an SQLite database")
        }
        let applicationID = header[68..<72].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        if applicationID == UInt32(bitPattern: Schema.applicationID) {
            try checkNotTruncated(path: path, header: header)
            return
        }
        guard applicationID == 0 else {
            throw .unusableDatabase(path: path, reason: "it belongs to another application (application_id \(applicationID))")
        }
        // No application id in the file header. It may still be ours with the first migration
        // only in the WAL (not yet checkpointed), so ask SQLite, read-only. Otherwise only an
        // SQLite file with no tables at all may be adopted.
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            let (id, tables) = try queue.read { db in
                (
                    try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
                )
            }
            try queue.close()
            guard id == Schema.applicationID || tables == 0 else {
                throw StorageError.unusableDatabase(path: path, reason: "it is another application's SQLite database")
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw .unusableDatabase(
                path: path, reason: "it cannot be read as SQLite (\((error as? DatabaseError)?.message ?? "unknown error"))")
        }
    }
}

extension DatabasePreflight {
    /// A file shorter than its content needs was cut off (a failed copy, a full disk during a
    /// restore). SQLite would open it and fail only when a missing page is read, possibly long
    /// after start, so refuse it here. The pages the database needs are the header's page count
    /// (SQLite file format §1.3.7, trusted when "version-valid-for" equals the change counter) or,
    /// with a WAL beside it, the size in the WAL's last commit frame (§4.1); every needed page must
    /// be in the file or in a committed WAL frame.
    static func checkNotTruncated(path: String, header: [UInt8]) throws(StorageError) {
        let rawPageSize = Int(header[16]) << 8 | Int(header[17])
        let pageSize = rawPageSize == 1 ? 65536 : rawPageSize
        guard pageSize >= 512, let fileSize = fileSize(path) else { return }
        let pagesInFile = fileSize / pageSize
        var needed = be32(header, 92) == be32(header, 24) ? Int(be32(header, 28)) : 0
        var inWAL = Set<Int>()
        if let wal = walCommittedPages(path: path + "-wal", pageSize: pageSize) {
            needed = wal.databasePages
            inWAL = wal.pages
        }
        if let missing = (pagesInFile + 1..<max(needed + 1, pagesInFile + 1)).first(where: { !inWAL.contains($0) }) {
            throw .unusableDatabase(
                path: path, reason: "it is truncated: page \(missing) of \(needed) is missing (the file has \(fileSize) bytes)")
        }
    }

    static func be32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        bytes[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    static func fileSize(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    /// The pages written by committed frames of the current WAL generation and the database size
    /// the last commit records; nil without a usable WAL. Frames are recognised by the header's
    /// salts (§4.1); a torn tail after the last commit frame does not count. Only the 32-byte
    /// header and each frame's 24-byte header are read (`pread`), never the pages: a WAL left
    /// large by a crash under load must not cost its size in memory at start.
    static func walCommittedPages(path: String, pageSize: Int) -> (pages: Set<Int>, databasePages: Int)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let walSize = Int(info.st_size)
        func read(_ count: Int, at offset: Int) -> [UInt8]? {
            var bytes = [UInt8](repeating: 0, count: count)
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return got == count ? bytes : nil
        }
        guard let header = read(32, at: 0) else { return nil }
        guard be32(header, 0) & 0xFFFF_FFFE == 0x377F_0682, Int(be32(header, 8)) == pageSize else { return nil }
        let salts = (be32(header, 16), be32(header, 20))
        var pages = Set<Int>()
        var pending = Set<Int>()
        var databasePages = 0
        var offset = 32
        while offset + 24 + pageSize <= walSize {
            // A read error inside the file's size is not a torn tail: no answer, as before.
            guard let frame = read(24, at: offset) else { return nil }
            guard (be32(frame, 8), be32(frame, 12)) == salts else { break }
            pending.insert(Int(be32(frame, 0)))
            let commitSize = Int(be32(frame, 4))
            if commitSize > 0 {
                pages.formUnion(pending)
                pending.removeAll()
                databasePages = commitSize
            }
            offset += 24 + pageSize
        }
        return databasePages > 0 ? (pages, databasePages) : nil
    }
}
