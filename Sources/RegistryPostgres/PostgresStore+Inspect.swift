import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring

/// What a start would find, with nothing written (`anonregd --check-config`).
public struct PostgresInspection: Sendable, Equatable {
    /// Whether the database holds anonreg's schema yet (a start migrates an empty one).
    public var exists: Bool
    /// Migrations a start would apply, by name.
    public var pendingMigrations: [String]
    /// Erasures the database lists (every node's).
    public var erasures: Int
}

extension PostgresStore {
    /// Connects once, and checks what `open` would, writing nothing: the password file, the
    /// server's durability settings, that the database is anonreg's (or empty) and not newer than
    /// this release, and that it goes with `keyring`. Returns what a start would do.
    public static func inspect(
        _ config: PostgresConfig, keyring: Keyring,
        logger: Logger = Logger(label: "anonreg.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws(PostgresBackendError) -> PostgresInspection {
        try config.validate()
        let password = try PasswordFile.read(config.passwordFile)
        let configuration = try makeConnectionConfiguration(config, password: password)
        let binding: [UInt8]
        do { binding = try RowIntegrity.keyringBinding(keyring) } catch { throw .configuration("the keyring's row MAC key cannot be used") }
        let box = InspectionBox()
        try await Deadline.run(config.connectTimeout, config: config) {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            do {
                box.value = try await inspect(connection, database: config.database, binding: binding, logger: logger)
                try? await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        }
        guard let inspection = box.value else { throw .server(sqlState: "", message: "the inspection returned nothing") }
        return inspection
    }

    private static func inspect(_ connection: PostgresConnection, database: String, binding: [UInt8], logger: Logger) async throws
        -> PostgresInspection
    {
        try await PostgresErrors.mapping {
            var settings: [(String, String, String)] = []
            for try await row in try await connection.stream(PostgresQuery(unsafeSQL: PostgresDurability.query), logger: logger).decode(
                (String, String, String).self)
            {
                settings.append(row)
            }
            guard let (fsync, synchronousCommit, fullPageWrites) = settings.first else {
                throw PostgresBackendError.server(sqlState: "", message: "the server did not answer for its settings")
            }
            try PostgresDurability.check(fsync: fsync, synchronousCommit: synchronousCommit, fullPageWrites: fullPageWrites)
            let ours = try await PostgresSchema.single(
                connection, "SELECT to_regclass('public.\(unescaped: PostgresSchema.migrationTable)') IS NOT NULL", as: Bool.self,
                logger: logger)
            guard ours else {
                let tables = try await PostgresSchema.collect(
                    connection, PostgresSchema.foreignRelationsQuery, as: String.self, logger: logger)
                guard tables.isEmpty else { throw PostgresBackendError.foreignDatabase(database: database, tables: tables) }
                return PostgresInspection(exists: false, pendingMigrations: PostgresSchema.migrationNames, erasures: 0)
            }
            let recorded = try await PostgresSchema.collect(
                connection, "SELECT name FROM public.\(unescaped: PostgresSchema.migrationTable) ORDER BY position", as: String.self,
                logger: logger)
            let known = Set(PostgresSchema.migrationNames)
            let unknown = recorded.filter { !known.contains($0) }
            guard unknown.isEmpty else { throw PostgresBackendError.newerSchema(database: database, migrations: unknown, releases: []) }
            let stored = try await PostgresSchema.collect(
                connection, "SELECT mac FROM keyring_binding WHERE id = 1", as: ByteBuffer.self, logger: logger)
            if let mac = stored.first, !RowIntegrity.matches(Array(mac.readableBytesView), binding) {
                throw PostgresBackendError.keyringMismatch(
                    database: database,
                    reason:
                        "it was written with another keyring (its index key differs): start anonregd with the keys directory every node of this registry holds"
                )
            }
            let listed =
                recorded.contains("pg3-erasure-ledger-entries")
                ? try await PostgresSchema.single(connection, "SELECT count(*) FROM erasure_ledger_entry", as: Int64.self, logger: logger)
                : 0
            return PostgresInspection(
                exists: true, pendingMigrations: PostgresSchema.migrationNames.filter { !recorded.contains($0) }, erasures: Int(listed))
        }
    }
}

/// Carries the inspection out of the deadline's task.
private final class InspectionBox: @unchecked Sendable {
    var value: PostgresInspection?
}
