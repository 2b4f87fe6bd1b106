import Foundation
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryServer
import RegistryStore

/// The embedded default backend: one SQLite file in the state directory (docs/STORAGE.md).
/// anonregd's composition root is the only place the daemon names it.
struct SQLiteBackend: StorageBackend {
    var name: String { "sqlite" }

    func removeStaleCopies(config: DaemonConfig) -> [String] {
        let directory = (config.databasePath as NSString).deletingLastPathComponent
        return SQLiteRegistryStore.removeStaleCopies(in: directory.isEmpty ? "." : directory)
    }

    func open(config: DaemonConfig, keys: KeyCustody) throws(StorageError) -> any RegistryBackend {
        try SQLiteRegistryStore(path: config.databasePath, keys: keys, auditCheckpointEvery: config.audit.checkpointEvery)
    }

    func inspect(config: DaemonConfig, keyring: Keyring) throws(StorageError) -> StorageInspection {
        let inspection = try SQLiteRegistryStore.inspect(path: config.databasePath, keyring: keyring)
        return StorageInspection(
            exists: inspection.exists, pendingMigrations: inspection.pendingMigrations, erasures: inspection.ledger.count)
    }
}
