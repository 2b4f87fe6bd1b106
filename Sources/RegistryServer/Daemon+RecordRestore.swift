import Foundation
import Logging
import RegistryConfig
import RegistryCore
import RegistryKeyring

extension Daemon {
    /// `anonregd --config PATH --record-restore`: after the registry's database was restored
    /// with the database's own tools (PostgreSQL: `pg_restore`, or a base backup brought back),
    /// records the restore in the audit log, signed, and moves this node's anchor; every other
    /// node's start then accepts the restored log (docs/OPERATIONS.md §PostgreSQL and several
    /// nodes, "Restoring"; docs/CRYPTO.md §Audit, "Restores"). Run on one node while no node
    /// serves. Exits 0, or as a start would fail (2 configuration, 3 keys, 4 database, 5 this
    /// node's daemon is running).
    public static func recordRestore(configPath: String, backend: any StorageBackend) async -> Exit {
        hardenProcess()
        let config: DaemonConfig
        do { config = try DaemonConfig.load(path: configPath) } catch {
            fail("configuration: \(error)")
            return .config
        }
        // Before anything is opened: on SQLite, restores are anonreg's own and record themselves.
        guard config.storage != .sqlite else {
            fail(
                "database: a SQLite registry is restored with `anonreg backup restore`, which records the restore itself; --record-restore is for a PostgreSQL registry restored with PostgreSQL's tools"
            )
            return .database
        }
        if let problem = serviceUserProblem(config) {
            fail("configuration: \(problem)")
            return .config
        }
        // This node's daemon must not be serving while its anchor moves.
        let lock: StateDirectoryLock
        do { lock = try StateDirectoryLock(stateDirectory: config.stateDirectory) } catch {
            fail("socket: \(error)")
            return .socket
        }
        defer { withExtendedLifetime(lock) {} }
        let keyring: Keyring
        do { keyring = try Keyring.load(from: KeyringSource.fromEnvironment(directory: config.keysDirectory)) } catch {
            fail("keyring: \(describe(error))")
            return .keys
        }
        var logger = Logger(label: "anonregd")
        logger.logLevel = .warning
        let store: any RegistryBackend
        do { store = try await backend.open(config: config, keys: KeyCustody(keyring), logger: logger) } catch {
            fail("database: \(error)")
            return .database
        }
        defer { try? store.close() }
        // The restore itself merges this node's erasure ledger into the database, and its entry
        // counts the erasures put back (not `prepareErasureLedger`, which would merge first).
        let checkpoint: AuditChain.Checkpoint
        do { checkpoint = try await store.recordDatabaseRestore(actor: "admin uid \(getuid()) record-restore") } catch {
            fail("database: \(error)")
            return .database
        }
        print(
            """
            restore recorded in the audit log: entry \(checkpoint.seq), signed at \(checkpoint.at)
              this node's audit anchor moved to it; start every node now
            """)
        return .ok
    }
}
