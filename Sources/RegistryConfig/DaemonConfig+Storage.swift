// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The TOML file shapes decode by property name, so they keep the file's snake_case keys.

import Foundation

extension DaemonConfig {
    /// `[storage] backend`: where the registry lives (docs/OPERATIONS.md §Storage backends).
    public enum Storage: Sendable, Equatable {
        /// The embedded default: one SQLite file (`daemon.database`) in the state directory.
        case sqlite
        /// A PostgreSQL database that several anonregd may share (`[postgres]`).
        case postgresql(Postgres)
    }

    /// `[postgres]`: how to reach the database. The backend itself (RegistryPostgres) checks
    /// these again and connects; this module only reads and validates the file's shape.
    public struct Postgres: Sendable, Equatable {
        /// How the server is reached: a Unix socket directory, or a host over TCP (always TLS,
        /// verify-full against `caFile`).
        public enum Endpoint: Sendable, Equatable {
            case socketDirectory(String)
            case host(String, caFile: String)
        }

        /// Where the password comes from: a file, or a systemd credential (`LoadCredential=`),
        /// read from `$CREDENTIALS_DIRECTORY/<name>` when the daemon opens the database.
        public enum Password: Sendable, Equatable {
            case file(String)
            case credential(String)
        }

        public var endpoint: Endpoint
        public var port: Int
        public var database: String
        public var user: String
        public var password: Password
        public var connectTimeoutSeconds: Int
        public var maxConnections: Int

        public init(
            endpoint: Endpoint, port: Int, database: String, user: String, password: Password, connectTimeoutSeconds: Int,
            maxConnections: Int
        ) {
            self.endpoint = endpoint
            self.port = port
            self.database = database
            self.user = user
            self.password = password
            self.connectTimeoutSeconds = connectTimeoutSeconds
            self.maxConnections = maxConnections
        }

        /// The password file's path: the file itself, or the credential in `credentialsDirectory`.
        public func passwordPath(credentialsDirectory: String?) -> String? {
            switch password {
            case .file(let path): path
            case .credential(let name): credentialsDirectory.map { $0 + "/" + name }
            }
        }
    }
}

extension DaemonConfig.Storage {
    /// The setting in words, for logs and `--check-config` (no password).
    public var summary: String {
        switch self {
        case .sqlite: return "sqlite"
        case .postgresql(let postgres):
            let endpoint =
                switch postgres.endpoint {
                case .socketDirectory(let directory): "socket \(directory) port \(postgres.port)"
                case .host(let host, let caFile): "\(host):\(postgres.port) TLS (CA \(caFile))"
                }
            return "postgresql \(endpoint) database \(postgres.database) user \(postgres.user)"
        }
    }
}

/// The TOML shapes of `[storage]` and `[postgres]`.
struct StorageFile: Decodable {
    var backend: String?
}

struct PostgresFile: Decodable {
    var socket_dir: String?
    var host: String?
    var port: Int?
    var ca_file: String?
    var database: String?
    var user: String?
    var password_file: String?
    var password_credential: String?
    var connect_timeout_seconds: Int?
    var max_connections: Int?

    /// PostgreSQL truncates identifiers to 63 bytes: a longer name would name something else.
    static let identifierBytes = 63

    func validated(path: String) throws(ConfigError) -> DaemonConfig.Postgres {
        func bad(_ reason: String) -> ConfigError { .invalid(path: path, reason: "postgres.\(reason)") }
        let endpoint: DaemonConfig.Postgres.Endpoint
        switch (socket_dir, host) {
        case (let directory?, nil):
            guard directory.hasPrefix("/") else { throw bad("socket_dir must be an absolute path, such as \"/run/postgresql\"") }
            guard ca_file == nil else { throw bad("ca_file is for host (TCP with TLS); a Unix socket needs none") }
            endpoint = .socketDirectory(directory)
        case (nil, let host?):
            guard !host.isEmpty, !host.contains("/") else { throw bad("host must be a host name or address; for a socket use socket_dir") }
            guard let ca = ca_file else {
                throw bad("host needs ca_file: anonreg connects over TCP only with TLS, verifying the server against that CA")
            }
            guard ca.hasPrefix("/") else { throw bad("ca_file must be an absolute path") }
            endpoint = .host(host, caFile: ca)
        default:
            throw bad("needs exactly one of socket_dir (a Unix socket) and host (TCP with TLS)")
        }
        let port = self.port ?? 5432
        guard (1...65535).contains(port) else { throw bad("port must be 1 to 65535") }
        let database = self.database ?? "anonreg"
        let user = self.user ?? "anonreg"
        for (name, value) in [("database", database), ("user", user)] {
            guard !value.isEmpty, value.utf8.count <= Self.identifierBytes, !value.utf8.contains(0) else {
                throw bad("\(name) must be 1 to \(Self.identifierBytes) bytes")
            }
        }
        let password: DaemonConfig.Postgres.Password
        switch (password_file, password_credential) {
        case (let file?, nil):
            guard file.hasPrefix("/") else { throw bad("password_file must be an absolute path") }
            password = .file(file)
        case (nil, let name?):
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw bad("password_credential must be a systemd credential name (no \"/\")")
            }
            password = .credential(name)
        default:
            throw bad(
                "needs exactly one of password_file (a file only the daemon's user can read, mode 0600) and password_credential (a systemd credential); the password itself is never a setting"
            )
        }
        let timeout = connect_timeout_seconds ?? 10
        guard (1...600).contains(timeout) else { throw bad("connect_timeout_seconds must be 1 to 600") }
        // A periodic job holds one connection for its whole length (docs/STORAGE.md
        // §Single-runner jobs): two jobs and requests need at least four.
        let connections = max_connections ?? 8
        guard (4...1000).contains(connections) else { throw bad("max_connections must be 4 to 1000") }
        return DaemonConfig.Postgres(
            endpoint: endpoint, port: port, database: database, user: user, password: password, connectTimeoutSeconds: timeout,
            maxConnections: connections)
    }
}

extension ConfigFile {
    func validatedStorage(path: String) throws(ConfigError) -> DaemonConfig.Storage {
        switch storage?.backend ?? "sqlite" {
        case "sqlite":
            guard postgres == nil else {
                throw .invalid(
                    path: path,
                    reason: "[postgres] is set but storage.backend is \"sqlite\": set storage.backend = \"postgresql\" or remove [postgres]"
                )
            }
            return .sqlite
        case "postgresql":
            guard let postgres else { throw .invalid(path: path, reason: "storage.backend = \"postgresql\" needs a [postgres] table") }
            guard daemon.database == nil else {
                throw .invalid(path: path, reason: "daemon.database names a SQLite file; with storage.backend = \"postgresql\" remove it")
            }
            return .postgresql(try postgres.validated(path: path))
        case let other:
            throw .invalid(path: path, reason: "storage.backend must be \"sqlite\" or \"postgresql\", not \"\(other)\"")
        }
    }
}
