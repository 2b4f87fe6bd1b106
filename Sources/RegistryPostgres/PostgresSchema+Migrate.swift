import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryFormats
import RegistryProtocol

extension PostgresSchema {
    /// Brings the database to the current schema in one transaction under the migration lock,
    /// and returns the names of the migrations this call applied (empty when another node, or an
    /// earlier start, already had). Refuses, changing nothing, a database of another application
    /// and a database migrated by a newer release.
    ///
    /// The transaction runs at READ COMMITTED, so every statement after the lock sees what a
    /// node that held the lock before committed.
    static func migrate(
        _ connection: PostgresConnection, database: String, binding: [UInt8], logger: Logger
    ) async throws(PostgresBackendError) -> [String] {
        try await PostgresErrors.mapping {
            try await connection.send("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
            do {
                let applied = try await migrateLocked(connection, database: database, logger: logger)
                try await bindKeyring(connection, database: database, binding: binding, logger: logger)
                try await connection.send("COMMIT", logger: logger)
                return applied
            } catch {
                // The connection goes back to the pool: leave it outside any transaction. A failed
                // rollback closes nothing we rely on; the original error is the one to report.
                await connection.cleanUp("ROLLBACK", after: error, logger: logger)
                throw error
            }
        }
    }

    private static func migrateLocked(_ connection: PostgresConnection, database: String, logger: Logger) async throws -> [String] {
        try await connection.send("SELECT pg_advisory_xact_lock(\(migrationLockKey))", logger: logger)

        let ours = try await single(
            connection, "SELECT to_regclass('public.\(unescaped: migrationTable)') IS NOT NULL", as: Bool.self, logger: logger)
        if !ours {
            let tables = try await collect(connection, foreignRelationsQuery, as: String.self, logger: logger)
            guard tables.isEmpty else { throw PostgresBackendError.foreignDatabase(database: database, tables: tables) }
            try await connection.send(PostgresQuery(unsafeSQL: migrationTableStatement), logger: logger)
        }

        var recorded: [String: String] = [:]
        let rows = try await connection.stream(
            "SELECT name, release FROM public.\(unescaped: migrationTable) ORDER BY position", logger: logger)
        for try await (name, release) in rows.decode((String, String).self) { recorded[name] = release }

        let all = migrations
        let known = Set(all.map(\.name))
        let unknown = recorded.keys.filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            var releases: [String] = []
            for name in unknown where !releases.contains(recorded[name]!) { releases.append(recorded[name]!) }
            throw PostgresBackendError.newerSchema(database: database, migrations: unknown, releases: releases)
        }

        var applied: [String] = []
        for (index, migration) in all.enumerated() where recorded[migration.name] == nil {
            for statement in migration.statements {
                try await connection.send(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let position = index + 1
            try await connection.send(
                """
                INSERT INTO public.\(unescaped: migrationTable) (position, name, release)
                VALUES (\(position), \(migration.name), \(AnonregVersion.software))
                """, logger: logger)
            applied.append(migration.name)
            logger.info("applied migration", metadata: ["migration": .string(migration.name)])
        }
        return applied
    }

    /// docs/CRYPTO.md §Authenticated columns, "Keyring binding": the first node to open the
    /// database records which keyring it goes with; every node after it must hold the same one.
    /// A node with another keyring (another registry's, a fresh one) would find every row's MAC
    /// wrong and, if it swept, erase them all. A database that holds subjects but no binding
    /// had it removed outside anonreg, and is refused too. Runs under the migration lock, so two
    /// nodes starting at once with different keyrings cannot both bind.
    private static func bindKeyring(_ connection: PostgresConnection, database: String, binding: [UInt8], logger: Logger) async throws {
        let stored = try await collect(connection, "SELECT mac FROM keyring_binding WHERE id = 1", as: ByteBuffer.self, logger: logger)
        if let mac = stored.first {
            guard RowIntegrity.matches(Array(mac.readableBytesView), binding) else {
                throw PostgresBackendError.keyringMismatch(
                    database: database,
                    reason:
                        "it was written with another keyring (its index key differs): start anonregd with the keys directory every node of this registry holds"
                )
            }
            return
        }
        let subjects = try await single(connection, "SELECT count(*) FROM subject", as: Int64.self, logger: logger)
        guard subjects == 0 else {
            throw PostgresBackendError.keyringMismatch(
                database: database,
                reason: "it holds subjects but no longer records which keyring it goes with (keyring_binding was emptied outside anonreg)")
        }
        try await connection.send("INSERT INTO keyring_binding (id, mac) VALUES (1, \(ByteBuffer(bytes: binding)))", logger: logger)
    }

    /// Up to five relations (tables, views, sequences, foreign tables) outside PostgreSQL's own
    /// schemas: in a database without the migration table, any of them means it is not ours.
    static let foreignRelationsQuery: PostgresQuery = """
        SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
        ORDER BY 1 LIMIT 5
        """

    static func collect<T: PostgresDecodable & Sendable>(
        _ connection: PostgresConnection, _ query: PostgresQuery, as type: T.Type, logger: Logger
    ) async throws -> [T] {
        var values: [T] = []
        for try await (value) in try await connection.stream(query, logger: logger).decode(T.self) { values.append(value) }
        return values
    }

    static func single<T: PostgresDecodable & Sendable>(
        _ connection: PostgresConnection, _ query: PostgresQuery, as type: T.Type, logger: Logger
    ) async throws -> T {
        guard let value = try await collect(connection, query, as: type, logger: logger).first else {
            throw PostgresBackendError.server(sqlState: "", message: "a query that returns one row returned none")
        }
        return value
    }
}
