import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryCrypto
import RegistryKeyring

/// Keys on several nodes (docs/STORAGE.md §Keys on several nodes). Every node holds a copy of
/// the keyring, and a rotation happens on one of them, so the database records the registry's
/// primary KEK version (`kek_primary`): the highest any node's keyring has made primary.
///
/// - A node wraps new data keys (enrolment, rewrap) under the recorded version, even while its
///   own keyring still calls an older one primary, as long as it holds the recorded version:
///   `keys retire` on any node then never finds a subject still being wrapped under the old one.
/// - A node whose keyring lacks the recorded version refuses writes with `keyringBehind` (503
///   `keyring_behind`) and logs which version to install; it keeps serving reads, and erasures
///   (a withdrawal needs no new key, and forgetting is never held up). It looks
///   again at its next write and every few minutes, so installing the version (and reloading
///   the keyring) is enough.
/// - A node whose keyring made a newer version primary records it. The registry keeps the key
///   check (docs/CRYPTO.md §Key checks) of every version wrapped under (`kek_check`): a node
///   that holds another key under that number (it rotated on its own) is behind too, never
///   wraps under it, never records a newer primary past it, and never erases a subject whose
///   data key its key fails to open (`trustsKEK`).
/// - A version staged on every node before one of them rotates (`anonreg keys stage`) counts as
///   held: no node refuses a write when the rotation lands.
extension PostgresStore {
    /// The version and key new data keys are wrapped under, in the caller's transaction;
    /// records this node's primary when it is newer than the registry's. Throws
    /// `keyringBehind` when this node lacks the registry's primary, or holds another key under
    /// its number (it rotated on its own: wrapping under it would make subjects other nodes
    /// cannot open), and when it would record a newer primary while holding another key under
    /// the registry's current one.
    func registryPrimaryKEK(_ connection: PostgresConnection, keyring: Keyring, logger: Logger) async throws
        -> (version: Int, key: KeyMaterial)
    {
        let own = keyring.primaryKEK
        var recorded = try await Self.recordedPrimary(connection, logger: logger)
        if recorded == nil || recorded!.version < own.version {
            // Never forward past a version this node holds another key of.
            if let recorded, !Self.agrees(keyring, version: recorded.version, check: recorded.check) {
                throw behind(recorded.version, logger: logger, reason: "holds another key as")
            }
            // Only ever forward; then read again, since another node may have recorded the same
            // or a newer version meanwhile.
            try await Self.recordCheck(connection, keyring: keyring, version: own.version, logger: logger)
            try await connection.send(
                """
                INSERT INTO kek_primary (id, version) VALUES (1, \(Int32(own.version)))
                ON CONFLICT (id) DO UPDATE SET version = excluded.version WHERE kek_primary.version < excluded.version
                """, logger: logger)
            recorded = try await Self.recordedPrimary(connection, logger: logger)
        }
        guard var recorded else { throw StorageError.integrity(what: "registry's primary KEK record") }
        let entry = keyring.kekEntries.first { $0.version == recorded.version }
        let held = entry.map { [.staged, .active, .primary].contains($0.status) } ?? false
        guard held, let key = try? keyring.kek(version: recorded.version) else {
            throw behind(recorded.version, logger: logger, reason: "lacks")
        }
        if recorded.check == nil {
            // The first node to wrap under this version (or the first since migration
            // pg6-kek-checks) records its check; whoever was first, all compare with it.
            try await Self.recordCheck(connection, keyring: keyring, version: recorded.version, logger: logger)
            recorded = try await Self.recordedPrimary(connection, logger: logger) ?? recorded
        }
        guard recorded.check != nil, Self.agrees(keyring, version: recorded.version, check: recorded.check) else {
            throw behind(recorded.version, logger: logger, reason: "holds another key as")
        }
        keyringBehindVersion.store(0, ordering: .relaxed)
        return (recorded.version, key)
    }

    /// Whether this node may trust its key of `version` for data keys wrapped by any node: the
    /// registry recorded no check for it, or this node's key has that check. Asked before a
    /// subject whose data key fails to open is erased (`PostgresStore+Sweep.swift`): under a key
    /// that is not the registry's, every subject of that version fails, and none is damaged.
    func trustsKEK(_ connection: PostgresConnection, version: Int, logger: Logger) async throws -> Bool {
        let check = try await connection.row(
            "SELECT key_check FROM kek_check WHERE version = \(Int32(clamping: version))", logger: logger)?.decode(String.self)
        guard let check else { return true }
        return keyring.manifest.kekCheck(version: version) == check
    }

    /// Whether this node's key of `version` has `check` (true when either is unknown: a version
    /// this node does not hold, or one the registry has no check for).
    private static func agrees(_ keyring: Keyring, version: Int, check: String?) -> Bool {
        guard let check, let own = keyring.manifest.kekCheck(version: version) else { return true }
        // Key checks are not secret (keyring.json holds them in the clear).
        return own == check
    }

    /// Records this node's check of `version` unless one is recorded. A concurrent recorder's
    /// row, once committed, wins; the caller reads whichever is recorded again.
    private static func recordCheck(_ connection: PostgresConnection, keyring: Keyring, version: Int, logger: Logger) async throws {
        guard let check = keyring.manifest.kekCheck(version: version) else { return }
        try await connection.send(
            "INSERT INTO kek_check (version, key_check) VALUES (\(Int32(version)), \(check)) ON CONFLICT (version) DO NOTHING",
            logger: logger)
    }

    /// The registry's primary and the check recorded for it, in one statement.
    private static func recordedPrimary(_ connection: PostgresConnection, logger: Logger) async throws -> (version: Int, check: String?)? {
        guard
            let row = try await connection.row(
                "SELECT p.version, c.key_check FROM kek_primary p LEFT JOIN kek_check c ON c.version = p.version WHERE p.id = 1",
                logger: logger)
        else { return nil }
        let (version, check) = try row.decode((Int32, String?).self)
        return (Int(version), check)
    }

    /// Marks this node behind, logs why once per version, and gives the error to throw.
    func behind(_ version: Int, logger: Logger, reason: String) -> StorageError {
        if keyringBehindVersion.exchange(version, ordering: .relaxed) != version {
            logger.error(
                "this node's keyring \(reason) KEK version \(version), the registry's (another node rotated to it): writes are refused with 503 keyring_behind until that node's kek-\(version).key and keyring.json are installed here",
                metadata: ["kek.version": "\(version)"])
        }
        return StorageError.keyringBehind(version: version)
    }

    /// The sweep's refusal to erase a subject whose data key this node's key of `version` fails
    /// to open, that key not being the registry's: logged as such, with the error to throw.
    func distrusted(_ version: Int, logger: Logger) -> StorageError {
        logger.error(
            "this node's kek-\(version).key is not the key the registry recorded for KEK version \(version): a subject under it that this node cannot open was left as it is, not erased; install the registry's kek-\(version).key here (docs/OPERATIONS.md §PostgreSQL and several nodes, \"KEK rotation\")",
            metadata: ["kek.version": "\(version)"])
        return StorageError.keyringBehind(version: version)
    }

    /// `keys stage` and `keys rotate` (a new version, not a staged one promoted) on this node ask
    /// first: a number the registry records as primary, or has a key check for, is another
    /// node's, whose key this node must install rather than write its own.
    public func refuseKnownKEKVersion(_ version: Int) async throws(StorageError) {
        let logger = self.logger
        let known = try await read { connection in
            try await connection.row(
                """
                SELECT greatest((SELECT max(version) FROM kek_primary), (SELECT max(version) FROM kek_check))
                """, logger: logger)?.decode(Int32?.self)
        }
        if let known = known ?? nil, Int(known) >= version { throw StorageError.keyringBehind(version: Int(known)) }
    }

    /// Before a write that wraps no key: refused while this node is known to be behind, after
    /// looking again (the version may have been installed since).
    func refuseWritesIfBehind(_ connection: PostgresConnection, logger: Logger) async throws {
        guard keyringBehindVersion.load(ordering: .relaxed) != 0 else { return }
        _ = try await registryPrimaryKEK(connection, keyring: keyring, logger: logger)
    }

    /// Every few minutes and at start: whether this node is behind, so that it refuses writes
    /// before a client finds out. Errors other than being behind are left to the next request.
    func checkKeyringPosition() async {
        let logger = self.logger
        _ = try? await write { connection in
            _ = try await self.registryPrimaryKEK(connection, keyring: self.keyring, logger: logger)
        }
    }
}
