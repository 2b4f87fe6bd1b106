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
/// - A node whose keyring made a newer version primary records it, with its key check
///   (docs/CRYPTO.md §Keyring): a node that holds another key under that number (it rotated on
///   its own) is behind too, and never wraps under it.
/// - A version staged on every node before one of them rotates (`anonreg keys stage`) counts as
///   held: no node refuses a write when the rotation lands.
extension PostgresStore {
    /// The version and key new data keys are wrapped under, in the caller's transaction;
    /// records this node's primary (with its key check) when it is newer than the registry's.
    /// Throws `keyringBehind` when this node lacks the registry's primary, or holds another key
    /// under its number (it rotated on its own: wrapping under it would make subjects other
    /// nodes cannot open).
    func registryPrimaryKEK(_ connection: PostgresConnection, keyring: Keyring, logger: Logger) async throws
        -> (version: Int, key: KeyMaterial)
    {
        let own = keyring.primaryKEK
        var recorded = try await Self.recordedPrimary(connection, logger: logger)
        if recorded == nil || recorded!.version < own.version {
            // Only ever forward, with the check of the key it names; then read again, since
            // another node may have recorded the same or a newer version meanwhile.
            let check = keyring.manifest.kekCheck(version: own.version)
            try await connection.send(
                """
                INSERT INTO kek_primary (id, version, key_check) VALUES (1, \(Int32(own.version)), \(check))
                ON CONFLICT (id) DO UPDATE SET version = excluded.version, key_check = excluded.key_check
                WHERE kek_primary.version < excluded.version
                """, logger: logger)
            recorded = try await Self.recordedPrimary(connection, logger: logger)
        }
        guard let recorded else { throw StorageError.integrity(what: "registry's primary KEK record") }
        let entry = keyring.kekEntries.first { $0.version == recorded.version }
        let held = entry.map { [.staged, .active, .primary].contains($0.status) } ?? false
        guard held, let key = try? keyring.kek(version: recorded.version) else {
            throw behind(recorded.version, logger: logger, reason: "lacks")
        }
        let ownCheck = keyring.manifest.kekCheck(version: recorded.version)
        if let check = recorded.check {
            // Key checks are not secret (keyring.json holds them in the clear).
            guard ownCheck == check else {
                throw behind(recorded.version, logger: logger, reason: "holds another key as")
            }
        } else if let ownCheck {
            // Recorded before the registry kept checks (migration pg6-kek-primary-check).
            try await connection.send(
                """
                UPDATE kek_primary SET key_check = \(ownCheck)
                WHERE id = 1 AND version = \(Int32(recorded.version)) AND key_check IS NULL
                """, logger: logger)
        }
        keyringBehindVersion.store(0, ordering: .relaxed)
        return (recorded.version, key)
    }

    private static func recordedPrimary(_ connection: PostgresConnection, logger: Logger) async throws -> (version: Int, check: String?)? {
        guard let row = try await connection.row("SELECT version, key_check FROM kek_primary WHERE id = 1", logger: logger) else {
            return nil
        }
        let (version, check) = try row.decode((Int32, String?).self)
        return (Int(version), check)
    }

    /// Marks this node behind, logs why once per version, and gives the error to throw.
    private func behind(_ version: Int, logger: Logger, reason: String) -> StorageError {
        if keyringBehindVersion.exchange(version, ordering: .relaxed) != version {
            logger.error(
                "this node's keyring \(reason) KEK version \(version), the registry's primary (another node rotated to it): writes are refused with 503 keyring_behind until that node's kek-\(version).key and keyring.json are installed here",
                metadata: ["kek.version": "\(version)"])
        }
        return StorageError.keyringBehind(version: version)
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
