import Logging
import RegistryConfig
import RegistryCore
import RegistryKeyring

/// How anonregd opens its storage: the one thing the daemon asks of the composition root that
/// builds it (anonregd's `main`), which names a backend. Nothing else in this module knows which
/// backend serves (docs/STORAGE.md §The storage contract).
public protocol StorageBackend: Sendable {
    /// A name for logs and `--check-config` ("sqlite", "postgresql"), for `config`.
    func name(config: DaemonConfig) -> String

    /// Removes what an interrupted backup or restore left behind, before anything is opened;
    /// returns what it removed, for the log.
    func removeStaleCopies(config: DaemonConfig) -> [String]

    /// Opens (creating if absent) the registry, sealing and opening with the keys `keys` holds.
    /// Storage that is not anonreg's, damaged, or newer than this release is refused untouched.
    /// `logger` is the daemon's: what the backend logs (an outage, a node behind the registry's
    /// keys, erasures taken in from other nodes) reaches the journal.
    func open(config: DaemonConfig, keys: KeyCustody, logger: Logger) async throws(StorageError) -> any RegistryBackend

    /// What a start would find, with nothing written: `anonregd --check-config`. A ledger that
    /// does not extend what the storage recorded is `.unusableDatabase` naming the ledger.
    func inspect(config: DaemonConfig, keyring: Keyring) async throws(StorageError) -> StorageInspection
}

/// What `anonregd --check-config` reports about the storage.
public struct StorageInspection: Sendable, Equatable {
    /// Whether the registry exists yet (a start creates it).
    public var exists: Bool
    /// Migrations a start would apply, by name.
    public var pendingMigrations: [String]
    /// Entries in the erasure ledger, which extends what the storage recorded.
    public var erasures: Int

    public init(exists: Bool, pendingMigrations: [String], erasures: Int) {
        self.exists = exists
        self.pendingMigrations = pendingMigrations
        self.erasures = erasures
    }
}
