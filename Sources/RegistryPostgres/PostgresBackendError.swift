/// Why the PostgreSQL backend cannot open or use its database. Every case says what to change,
/// and none carries a secret: the password never appears in a message, and the server's own
/// messages are kept to their SQLSTATE and primary text (never the query or its parameters).
public enum PostgresBackendError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The `[postgres]` settings are incomplete or contradict each other (nothing was contacted).
    case configuration(String)
    /// The password file is missing, not a regular file, readable by others, owned by another
    /// user, empty or malformed.
    case passwordFile(path: String, reason: String)
    /// No PostgreSQL server answered at `endpoint` (no socket, refused, no answer within the
    /// connect timeout, or TLS failed).
    case unreachable(endpoint: String, reason: String)
    /// The server refused the user's credentials (wrong password, no matching pg_hba.conf line).
    case authenticationFailed(endpoint: String, user: String, database: String, reason: String)
    /// The server runs with a setting under which an acknowledged write may be lost (invariant 5).
    case notDurable(setting: String, value: String)
    /// The database holds tables but is not anonreg's (no `anonreg_migration` table): it belongs
    /// to another application and is left as it is. `tables` names up to five of them.
    case foreignDatabase(database: String, tables: [String])
    /// The database was migrated by a newer anonreg: it records migrations this release does not know.
    case newerSchema(database: String, migrations: [String], releases: [String])
    /// The database goes with another keyring than the node's (docs/CRYPTO.md §Authenticated
    /// columns, "Keyring binding"); nothing was changed.
    case keyringMismatch(database: String, reason: String)
    /// The server refused a statement or the connection for another reason (SQLSTATE and message).
    case server(sqlState: String, message: String)

    public var description: String {
        switch self {
        case .configuration(let reason):
            return "postgres configuration: \(reason)"
        case .passwordFile(let path, let reason):
            return "postgres password file \(path): \(reason)"
        case .unreachable(let endpoint, let reason):
            return "PostgreSQL at \(endpoint) is unreachable: \(reason)"
        case .authenticationFailed(let endpoint, let user, let database, let reason):
            return
                "PostgreSQL at \(endpoint) refused user \"\(user)\" for database \"\(database)\": \(reason). "
                + "Check the password file and the server's pg_hba.conf (scram-sha-256)"
        case .notDurable(let setting, let value):
            let wanted = setting == "synchronous_commit" ? "on or remote_apply" : "on"
            return
                "PostgreSQL runs with \(setting) = \(value): an acknowledged write could be lost on a crash. "
                + "anonreg needs \(setting) = \(wanted) (docs/STORAGE.md §PostgreSQL)"
        case .foreignDatabase(let database, let tables):
            return
                "database \"\(database)\" belongs to another application: it has tables (\(tables.joined(separator: ", "))) "
                + "but no anonreg_migration table. anonreg adopts only an empty database; it changed nothing"
        case .newerSchema(let database, let migrations, let releases):
            let writer = releases.isEmpty ? "a newer anonreg" : "anonreg " + releases.joined(separator: ", ")
            return
                "database \"\(database)\" was migrated by \(writer) (migration \(migrations.joined(separator: ", "))), "
                + "newer than this anonreg. Migrations are forward-only (docs/OPERATIONS.md §Upgrading)"
        case .keyringMismatch(let database, let reason):
            return "database \"\(database)\" cannot be used with this keyring: \(reason). It was left untouched"
        case .server(let sqlState, let message):
            return "PostgreSQL refused: \(message) (SQLSTATE \(sqlState))"
        }
    }
}
