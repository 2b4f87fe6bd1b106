import Foundation
import Logging
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import RegistryServer
import RegistryStore

/// The backend `[storage] backend` names (docs/OPERATIONS.md §Storage backends): the embedded
/// SQLite file in the state directory (the default), or a PostgreSQL database several anonregd
/// may share. anonregd's composition root is the only place the daemon names either.
struct ConfiguredBackend: StorageBackend {
    func name(config: DaemonConfig) -> String {
        switch config.storage {
        case .sqlite: "sqlite"
        case .postgresql: "postgresql"
        }
    }

    func removeStaleCopies(config: DaemonConfig) -> [String] {
        guard config.storage == .sqlite else { return [] }
        let directory = (config.databasePath as NSString).deletingLastPathComponent
        return SQLiteRegistryStore.removeStaleCopies(in: directory.isEmpty ? "." : directory)
    }

    func open(config: DaemonConfig, keys: KeyCustody, logger: Logger) async throws(StorageError) -> any RegistryBackend {
        switch config.storage {
        case .sqlite:
            return try SQLiteRegistryStore(path: config.databasePath, keys: keys, auditCheckpointEvery: config.audit.checkpointEvery)
        case .postgresql(let settings):
            let postgres = try Self.postgresConfig(settings)
            do {
                return try await PostgresStore.open(
                    postgres, keys: keys, auditCheckpointEvery: config.audit.checkpointEvery, logger: logger)
            } catch {
                throw Self.storageError(error, postgres)
            }
        }
    }

    func inspect(config: DaemonConfig, keyring: Keyring) async throws(StorageError) -> StorageInspection {
        switch config.storage {
        case .sqlite:
            let inspection = try SQLiteRegistryStore.inspect(path: config.databasePath, keyring: keyring)
            return StorageInspection(
                exists: inspection.exists, pendingMigrations: inspection.pendingMigrations, erasures: inspection.ledger.count)
        case .postgresql(let settings):
            let postgres = try Self.postgresConfig(settings)
            do {
                let inspection = try await PostgresStore.inspect(postgres, keyring: keyring)
                // The node's own ledger file must verify too, as a start checks it.
                let ledger = ErasureLedger(keyring: keyring)
                let own: Int
                do { own = try ledger.verify(extends: .empty).references.count } catch {
                    throw StorageError.unusableDatabase(path: ledger.path, reason: "erasure ledger: \(error)")
                }
                return StorageInspection(
                    exists: inspection.exists, pendingMigrations: inspection.pendingMigrations, erasures: max(own, inspection.erasures))
            } catch let error as StorageError {
                throw error
            } catch {
                throw Self.storageError(error, postgres)
            }
        }
    }

    /// `[postgres]` as the backend takes it; a credential is read from systemd's credentials
    /// directory (`$CREDENTIALS_DIRECTORY`, set by `LoadCredential=`).
    static func postgresConfig(_ settings: DaemonConfig.Postgres) throws(StorageError) -> PostgresConfig {
        let credentials = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"]
        guard let passwordFile = settings.passwordPath(credentialsDirectory: credentials) else {
            throw .unusableDatabase(
                path: "postgres.password_credential",
                reason:
                    "no systemd credentials directory ($CREDENTIALS_DIRECTORY is not set): start anonregd under systemd with LoadCredential=, or use password_file"
            )
        }
        let endpoint: PostgresConfig.Endpoint =
            switch settings.endpoint {
            case .socketDirectory(let directory): .unixSocket(directory: directory, port: settings.port)
            case .host(let host, let caFile): .tcp(host: host, port: settings.port, caFile: caFile)
            }
        return PostgresConfig(
            endpoint: endpoint, database: settings.database, user: settings.user, passwordFile: passwordFile,
            connectTimeout: .seconds(settings.connectTimeoutSeconds), maximumConnections: settings.maxConnections)
    }

    /// A refusal of the PostgreSQL backend, as the daemon reports storage problems: what is
    /// wrong, where, and that nothing was changed.
    static func storageError(_ error: any Error, _ config: PostgresConfig) -> StorageError {
        .unusableDatabase(path: "PostgreSQL database \"\(config.database)\" at \(config.endpointDescription)", reason: "\(error)")
    }
}
