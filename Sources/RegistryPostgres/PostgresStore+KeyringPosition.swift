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
/// - A node whose keyring made a newer version primary records it.
extension PostgresStore {
    /// The version and key new data keys are wrapped under, in the caller's transaction;
    /// records this node's primary when it is newer than the registry's. Throws
    /// `keyringBehind` when this node lacks the registry's primary.
    func registryPrimaryKEK(_ connection: PostgresConnection, keyring: Keyring, logger: Logger) async throws
        -> (version: Int, key: KeyMaterial)
    {
        let own = keyring.primaryKEK
        let recorded = try await connection.row("SELECT version FROM kek_primary WHERE id = 1", logger: logger)?.decode(Int32.self)
        guard let recorded = recorded.map(Int.init), recorded >= own.version else {
            try await connection.send(
                """
                INSERT INTO kek_primary (id, version) VALUES (1, \(Int32(own.version)))
                ON CONFLICT (id) DO UPDATE SET version = greatest(kek_primary.version, excluded.version)
                """, logger: logger)
            keyringBehindVersion.store(0, ordering: .relaxed)
            return own
        }
        guard recorded > own.version else {
            keyringBehindVersion.store(0, ordering: .relaxed)
            return own
        }
        let usable = keyring.kekEntries.contains { $0.version == recorded && ($0.status == .active || $0.status == .primary) }
        guard usable, let key = try? keyring.kek(version: recorded) else {
            if keyringBehindVersion.exchange(recorded, ordering: .relaxed) != recorded {
                logger.error(
                    "this node's keyring lacks KEK version \(recorded), the registry's primary (another node rotated to it): writes are refused with 503 keyring_behind until it is installed here",
                    metadata: ["kek.version": "\(recorded)"])
            }
            throw StorageError.keyringBehind(version: recorded)
        }
        keyringBehindVersion.store(0, ordering: .relaxed)
        return (recorded, key)
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
