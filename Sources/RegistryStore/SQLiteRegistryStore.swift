import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol
import Synchronization

/// The SQLite backend of `RegistryStorage`: WAL, `synchronous=FULL`, `secure_delete=ON`,
/// foreign keys, and group commit for writes. Nothing outside this module sees a `Database`.
public final class SQLiteRegistryStore: RegistryStorage {
    public let path: String
    /// A signed checkpoint every this many audit entries (config `audit.checkpoint_every`).
    public let auditCheckpointEvery: Int
    let pool: DatabasePool
    let writer: GroupCommitWriter
    let checkpointer: WALCheckpointer
    /// Reads wait here for a reader connection, served lane by lane (FairReadGate).
    let readGate: FairReadGate
    /// Point reads running on their caller's thread (`readPoint`).
    let inlineReads = InlineAllowance(limit: ProcessInfo.processInfo.activeProcessorCount / 2)
    /// Secure slots the data keys of requests are unwrapped into (docs/CRYPTO.md §Secret memory).
    let dekSlab: SecureSlab
    /// The erasure ledger's references (loaded by `checkErasureLedger`, extended by every
    /// erasure): a subject named there is never served (docs/CRYPTO.md §Authenticated columns).
    let erased = ErasedSubjects()
    /// When this process last ran each periodic job (`runIfDue`).
    let jobs = LocalJobSchedule()
    /// The audit anchor file's state (SQLiteRegistryStore+AuditAnchor.swift).
    let anchorState = Mutex(AnchorState())
    /// The keys, lent by whoever opened the store (the daemon's `KeyCustody`): the store seals
    /// and opens with them and never replaces them.
    let keys: KeyCustody

    /// The keyring snapshot one operation uses.
    var keyring: Keyring { keys.current }

    /// Opens (creating if absent) the registry database at `path` with a keyring of its own
    /// (the offline commands and tests, which hold no other custody).
    public convenience init(path: String, keyring: Keyring, auditCheckpointEvery: Int = 1000) throws(StorageError) {
        try self.init(path: path, keys: KeyCustody(keyring), auditCheckpointEvery: auditCheckpointEvery)
    }

    /// Opens (creating if absent) the registry database at `path`, sealing and opening with the
    /// keys `keys` holds. A file that is not an anonreg database (corrupt, or another
    /// application's SQLite file) is refused and left untouched.
    public init(path: String, keys: KeyCustody, auditCheckpointEvery: Int = 1000) throws(StorageError) {
        self.path = path
        self.auditCheckpointEvery = auditCheckpointEvery
        self.keys = keys
        // One snapshot for everything the opening checks and migrations do.
        let keyring = keys.current
        do { dekSlab = try SecureSlab(slotBytes: XChaCha20Poly1305.keyBytes, slotCount: Self.dekSlots) } catch {
            throw .database(reason: "secure memory unavailable")
        }
        try DatabasePreflight.check(path: path)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            // Deleted content is overwritten with zeros, in the WAL and in the database file.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // A commit returns only after the WAL is fsynced: acknowledged means durable.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // No checkpoint inside a commit: WALCheckpointer copies the WAL on its own connection.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
            // A WAL that a long reader made grow is cut back to this size when it restarts.
            try db.execute(sql: "PRAGMA journal_size_limit = \(Self.walSizeLimit)")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // GRDB's DatabasePool sets `synchronous = NORMAL` on its writer connection after
            // `prepareDatabase` has run (Database.setUpWALMode): commits would then not fsync
            // the WAL, and an acknowledged write could be lost to a power cut. Set FULL again on
            // the writer, the one connection that commits; `pragmas()` reads it back from there.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            #if DEBUG
                // Tests only, debug builds only: the durability trace test (DurabilityTraceTests)
                // proves it can see a missing WAL fsync by running the writer at NORMAL. A release
                // build has no such switch.
                if let value = getenv("ANONREG_TEST_SYNCHRONOUS"), String(cString: value) == "NORMAL" {
                    try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
                }
            #endif
            // A schema newer than this release is refused before anything is migrated.
            try pool.read { db in try Self.refuseNewerSchema(db, path: path) }
            let migrator = Schema.migrator(keyring: keyring)
            let applied = try pool.read { db in try migrator.appliedIdentifiers(db) }
            let pending = applied.count < migrator.migrations.count
            try Self.checkSchemaMark(applied: applied, keyring: keyring, path: path)
            try migrator.migrate(pool)
            try pool.read { db in try RowIntegrity.checkKeyringBinding(db, keyring: keyring, path: path) }
            if pending {
                // A migration may have overwritten values that must not survive anywhere (the
                // linkage hashes of v4-drop-linkage-hash): secure_delete zeroed them in the pages,
                // and the WAL that held the old pages is checkpointed and truncated now.
                try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
            }
            try Self.recordSchemaMark(try pool.read { db in Array(try migrator.appliedIdentifiers(db)) }, keyring: keyring)
            try pool.write { db in try Self.recordRelease(db) }
        } catch {
            throw StorageError.from(error, path: path)
        }
        do { checkpointer = try WALCheckpointer(path: path, configuration: configuration) } catch {
            throw StorageError.from(error, path: path)
        }
        writer = GroupCommitWriter(pool: pool, checkpointer: checkpointer)
        readGate = FairReadGate(permits: configuration.maximumReaderCount)
    }

    /// docs/CRYPTO.md §Authenticated columns, "Migrations": a database that already holds data
    /// must have every migration the schema mark beside the keyring names; one that went
    /// backwards (the MAC columns dropped and `v4-row-macs` struck from `grdb_migrations`, so that
    /// the next start would MAC forged rows) is refused and left untouched.
    static func checkSchemaMark<S: Collection>(applied: S, keyring: Keyring, path: String) throws where S.Element == String {
        guard !applied.isEmpty else { return }
        let mark: SchemaMark?
        do { mark = try SchemaMark.read(directory: keyring.source.directory) } catch {
            throw StorageError.unusableDatabase(path: path, reason: "\(error)")
        }
        guard let mark else { return }
        let missing = mark.missing(from: Array(applied))
        guard missing.isEmpty else {
            throw StorageError.unusableDatabase(
                path: path,
                reason:
                    "its schema lacks migration(s) \(missing.joined(separator: ", ")) that this registry's database had already reached (\(keyring.source.directory)/\(SchemaMark.fileName)): it was rolled back outside anonreg, or it is an older copy; restore a backup with `anonreg backup restore`"
            )
        }
    }

    /// Records the migrations the database has reached beside the keyring.
    static func recordSchemaMark(_ applied: [String], keyring: Keyring) throws {
        let directory = keyring.source.directory
        if let current = try? SchemaMark.read(directory: directory), current.migrations == applied { return }
        do { try SchemaMark(migrations: applied).write(directory: directory) } catch {
            throw StorageError.database(reason: "could not write the schema mark: \(error)")
        }
    }

    /// Bytes a restarted WAL is truncated to (`journal_size_limit`): 16 MiB.
    static let walSizeLimit = 16 << 20

    /// Data keys held at once before unwraps fall back to allocations of their own: one per
    /// concurrent request is enough (a due list holds one key at a time).
    static let dekSlots = 256

    /// `PRAGMA integrity_check`; "ok" when the database is sound.
    public func integrityCheck() async throws(StorageError) -> String {
        try await read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "no answer" }
    }

    /// The effective durability settings, for tests and `anonreg` diagnostics.
    /// Read on the writer connection: the settings that govern commits.
    public func pragmas() async throws(StorageError) -> (journalMode: String, synchronous: Int, secureDelete: Int, foreignKeys: Int) {
        try await onWriterConnection { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "",
                try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1,
                try Int.fetchOne(db, sql: "PRAGMA secure_delete") ?? -1,
                try Int.fetchOne(db, sql: "PRAGMA foreign_keys") ?? -1
            )
        }
    }

    /// `PRAGMA wal_autocheckpoint` of a connection (0: WALCheckpointer does it instead).
    func pragmasWALAutocheckpoint() async throws(StorageError) -> Int {
        try await onWriterConnection { db in try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint") ?? -1 }
    }

    /// Runs `body` on the writer connection, outside any transaction (settings, diagnostics).
    private func onWriterConnection<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StorageError) -> T {
        do { return try await pool.writeWithoutTransaction(body) } catch { throw StorageError.from(error, path: path) }
    }

    /// Retries a WAL truncation that a long reader prevented after an erasure. The daemon calls
    /// it periodically; returns whether erased data may still be in the WAL.
    @discardableResult
    public func retryPendingWALTruncation() async -> Bool {
        guard writer.walTruncationPending else { return false }
        return !(await writer.truncateWAL())
    }

    /// Closes the database, checkpointing the WAL into it and truncating the WAL to zero bytes.
    /// (GRDB closes the writer before the readers, so SQLite's own checkpoint-on-last-close does
    /// not happen, and the next start would find the whole WAL to replay and check.)
    public func close() throws(StorageError) {
        checkpointer.close()
        // Best effort: a reader still open past the busy timeout keeps the WAL, which the next
        // start replays; the pool is closed either way.
        _ = try? pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        do { try pool.close() } catch { throw StorageError.from(error, path: path) }
    }

    // MARK: - Running work

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StorageError) -> T {
        do { return try await readGate.run { try await pool.read(body) } } catch { throw StorageError.from(error, path: path) }
    }

    /// A point read (one subject's row and its summary, about 0.1 ms): run on the calling
    /// thread rather than handed to a reader's queue and back, two thread hand-offs fewer
    /// (docs/PERFORMANCE.md §Executor hops). Every read while the daemon serves, backups
    /// included, holds a permit of the read gate, which has as many as the pool has reader
    /// connections, and each gives its connection back before its permit: so once the gate
    /// granted one, GRDB's synchronous read finds a free connection and never waits. At most
    /// `inlineReads.limit` run so at once, half the cores (none on one core): a read that has to
    /// wait for the disk (a cold page of a large registry) then blocks at most half of Swift's
    /// cooperative threads, which the runtime does not replace; the rest take the queue's path as
    /// before.
    func readPoint<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StorageError) -> T {
        do {
            return try await readGate.run {
                guard inlineReads.enter() else { return try await pool.read(body) }
                defer { inlineReads.leave() }
                return try Self.readHere(pool, body)
            }
        } catch { throw StorageError.from(error, path: path) }
    }

    /// GRDB's synchronous read: from a synchronous function, so that overload is the one taken.
    private static func readHere<T>(_ pool: DatabasePool, _ body: (Database) throws -> T) throws -> T { try pool.read(body) }

    /// `bulk`: a long maintenance transaction (a rewrap batch) that must not hold up the
    /// writes and audit entries of requests for more than its own length (GroupCommitWriter).
    func write<T: Sendable>(
        checkpointAfter: Bool = false, bulk: Bool = false, _ body: @escaping @Sendable (Database) throws -> T
    ) async throws(StorageError) -> T {
        let result: T
        do { result = try await writer.write(checkpointAfter: checkpointAfter, bulk: bulk, body) } catch {
            throw StorageError.from(error, path: path)
        }
        // The transaction signed an audit checkpoint: the anchor beside the keyring follows,
        // now that it is committed (docs/CRYPTO.md §Audit, "Anchor").
        if anchorIsStale { await refreshAuditAnchor() }
        return result
    }
}
