import RegistryConfig
import Testing

/// `[storage]` and `[postgres]` (docs/OPERATIONS.md §Storage backends): SQLite stays the
/// default; PostgreSQL is reached by a socket or by TLS only, and its password is never a
/// setting.
struct StorageConfigTests {
    static let template = ConfigTemplate.render(stateDirectory: "/var/lib/anonreg", uid: 1000)

    static func parse(_ extra: String) throws(ConfigError) -> DaemonConfig {
        try DaemonConfig.parse(template + "\n" + extra, path: "anonreg.toml")
    }

    static func refusal(_ extra: String) -> String? {
        do {
            _ = try parse(extra)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func sqliteIsTheDefault() throws {
        #expect(try DaemonConfig.parse(Self.template, path: "anonreg.toml").storage == .sqlite)
        #expect(try Self.parse("[storage]\nbackend = \"sqlite\"\n").storage == .sqlite)
    }

    @Test func aSocketAndAPasswordFile() throws {
        let config = try Self.parse(
            """
            [storage]
            backend = "postgresql"

            [postgres]
            socket_dir = "/run/postgresql"
            password_file = "/etc/anonreg/pg-password"
            """)
        let expected = DaemonConfig.Postgres(
            endpoint: .socketDirectory("/run/postgresql"), port: 5432, database: "anonreg", user: "anonreg",
            password: .file("/etc/anonreg/pg-password"), connectTimeoutSeconds: 10, maxConnections: 8)
        #expect(config.storage == .postgresql(expected))
        #expect(config.storage.summary == "postgresql socket /run/postgresql port 5432 database anonreg user anonreg")
    }

    @Test func tlsToAHostAndASystemdCredential() throws {
        let config = try Self.parse(
            """
            [storage]
            backend = "postgresql"

            [postgres]
            host = "db.registry.example"
            port = 6432
            ca_file = "/etc/anonreg/db-ca.pem"
            database = "registry"
            user = "node_a"
            password_credential = "pg-password"
            max_connections = 16
            """)
        guard case .postgresql(let postgres) = config.storage else {
            Issue.record("not postgresql")
            return
        }
        #expect(postgres.endpoint == .host("db.registry.example", caFile: "/etc/anonreg/db-ca.pem"))
        #expect(
            postgres.passwordPath(credentialsDirectory: "/run/credentials/anonregd.service")
                == "/run/credentials/anonregd.service/pg-password")
        #expect(postgres.passwordPath(credentialsDirectory: nil) == nil)
    }

    @Test(arguments: [
        ("[storage]\nbackend = \"mysql\"\n", "storage.backend must be \"sqlite\" or \"postgresql\""),
        ("[storage]\nbackend = \"postgresql\"\n", "needs a [postgres] table"),
        ("[postgres]\nsocket_dir = \"/run/postgresql\"\npassword_file = \"/p\"\n", "[postgres] is set but storage.backend is \"sqlite\""),
        ("[storage]\nbackend = \"postgresql\"\n[postgres]\npassword_file = \"/p\"\n", "exactly one of socket_dir"),
        (
            "[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"/s\"\nhost = \"db\"\npassword_file = \"/p\"\n",
            "exactly one of socket_dir"
        ),
        ("[storage]\nbackend = \"postgresql\"\n[postgres]\nhost = \"db\"\npassword_file = \"/p\"\n", "host needs ca_file"),
        (
            "[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"run/pg\"\npassword_file = \"/p\"\n",
            "socket_dir must be an absolute path"
        ),
        ("[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"/s\"\n", "exactly one of password_file"),
        (
            "[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"/s\"\npassword = \"hunter2\"\n",
            "unknown keys: postgres.password"
        ),
        (
            "[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"/s\"\npassword_file = \"p\"\n",
            "password_file must be an absolute path"
        ),
        (
            "[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"/s\"\npassword_credential = \"../x\"\n",
            "password_credential must be a systemd credential name"
        ),
        (
            "[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"/s\"\npassword_file = \"/p\"\nport = 70000\n",
            "port must be 1 to 65535"
        ),
        (
            "[storage]\nbackend = \"postgresql\"\n[postgres]\nsocket_dir = \"/s\"\npassword_file = \"/p\"\ndatabase = \"\(String(repeating: "d", count: 64))\"\n",
            "database must be 1 to 63 bytes"
        ),
    ])
    func badSettingsAreRefusedSayingWhich(_ extra: String, _ expected: String) {
        let refusal = Self.refusal(extra)
        #expect(refusal?.contains(expected) == true, "\(refusal ?? "accepted")")
    }
}
