import Foundation
internal import GRDB
import RegistryCore
import RegistryKeyring
import RegistryProtocol

/// Which release migrated the database, so that an older anonreg refuses a newer schema with a
/// message that names the release that wrote it (docs/OPERATIONS.md §Upgrading). Migrations are
/// forward-only: a downgrade is a restore of the backup taken before the upgrade.
///
/// The `schema_release` table (migration "v4-schema-release") maps each applied migration to the
/// first release that found it applied. Every start fills in the rows it lacks, so a later
/// release's own migrations are recorded by that release.
extension SQLiteRegistryStore {
    /// Refuses a database migrated by a newer anonreg: it holds migrations this one does not know.
    static func refuseNewerSchema(_ db: Database, path: String) throws {
        guard try db.tableExists("grdb_migrations") else { return }
        let known = Set(Schema.migrationNames)
        let applied = try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
        let unknown = applied.filter { !known.contains($0) }
        guard !unknown.isEmpty else { return }
        var releases: [String] = []
        if try db.tableExists("schema_release") {
            for migration in unknown {
                if let release = try String.fetchOne(
                    db, sql: "SELECT release FROM schema_release WHERE migration = ?", arguments: [migration]),
                    !releases.contains(release)
                {
                    releases.append(release)
                }
            }
        }
        let writer = releases.isEmpty ? "a newer anonreg" : "anonreg " + releases.joined(separator: ", ")
        throw StorageError.unusableDatabase(
            path: path,
            reason: """
                its schema was migrated by \(writer) (migration \(unknown.joined(separator: ", "))), newer than this anonreg \
                \(AnonregVersion.software). Migrations are forward-only: run \(writer) or later, or restore the database backup \
                taken before the upgrade (docs/OPERATIONS.md §Upgrading)
                """)
    }

    /// Records this release against every applied migration that has no release yet.
    static func recordRelease(_ db: Database) throws {
        guard try db.tableExists("schema_release") else { return }
        try db.execute(
            sql: "INSERT OR IGNORE INTO schema_release (migration, release) SELECT identifier, ? FROM grdb_migrations",
            arguments: [AnonregVersion.software])
    }

    /// What `anonregd --check-config` learns about a database without writing to it: that it is
    /// anonreg's and undamaged, not newer than this release, how many migrations a start would
    /// apply, and that the erasure ledger extends what it recorded.
    public struct Inspection: Sendable {
        public var exists: Bool
        public var pendingMigrations: [String]
        public var ledger: ErasureLedger.State
    }

    public static func inspect(path: String, keyring: Keyring) throws(StorageError) -> Inspection {
        try DatabasePreflight.check(path: path)
        var pending = Schema.migrationNames
        var recorded = ErasureLedger.State.empty
        let exists = FileManager.default.fileExists(atPath: path)
        if exists {
            var configuration = Configuration()
            configuration.readonly = true
            do {
                let queue = try DatabaseQueue(path: readOnlyLocation(path), configuration: configuration)
                defer { try? queue.close() }
                try queue.read { db in
                    try refuseNewerSchema(db, path: path)
                    let applied =
                        try db.tableExists("grdb_migrations")
                        ? Set(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")) : []
                    pending.removeAll { applied.contains($0) }
                    recorded = try ledgerHead(db)
                }
            } catch {
                throw StorageError.from(error, path: path)
            }
        }
        let ledger = ErasureLedger(keyring: keyring)
        do { recorded = try ledger.verify(extends: recorded).state } catch {
            throw StorageError.unusableDatabase(path: ledger.path, reason: "erasure ledger: \(error)")
        }
        return Inspection(exists: exists, pendingMigrations: pending, ledger: recorded)
    }

    /// Where to open `path` so that reading it changes no file, not even SQLite's `-shm`: with no
    /// process holding the database and nothing in its WAL, the main file is the whole database
    /// and SQLite may read it as immutable (a URI filename; Debian's SQLite has USE_URI). While a
    /// daemon runs, a read-only connection that shares its `-shm` is the only consistent read.
    static func readOnlyLocation(_ path: String) -> String {
        var st = stat()
        let walEmpty = stat(path + "-wal", &st) != 0 || st.st_size == 0
        guard walEmpty, !DatabaseInUse.check(path) else { return path }
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        let escaped = path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
        return "file:" + escaped + "?immutable=1"
    }
}
