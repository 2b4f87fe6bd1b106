import Foundation
import GRDB
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
        if applicationID == UInt32(bitPattern: Schema.applicationID) { return }
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
                (try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0,
                 try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0)
            }
            try queue.close()
            guard id == Schema.applicationID || tables == 0 else {
                throw StorageError.unusableDatabase(path: path, reason: "it is another application's SQLite database")
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw .unusableDatabase(path: path, reason: "it cannot be read as SQLite (\((error as? DatabaseError)?.message ?? "unknown error"))")
        }
    }
}
