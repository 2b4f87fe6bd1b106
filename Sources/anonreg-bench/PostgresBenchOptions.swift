import ArgumentParser
import Foundation

/// `anonreg-bench run` on a PostgreSQL registry (issue 17; bench/postgres-nodes.sh): where the
/// database is, and as whom. Without `--postgres-socket-dir` the run uses SQLite, as before.
struct PostgresBenchOptions: ParsableArguments {
    @Option(help: "The PostgreSQL server's Unix socket directory: run on PostgreSQL instead of SQLite.")
    var postgresSocketDir: String?

    @Option(help: "The server's port (the socket's name).")
    var postgresPort = 5432

    @Option(help: "The database (owned by --postgres-user, empty or anonreg's).")
    var postgresDatabase = "anonreg"

    @Option(help: "The role.")
    var postgresUser = "anonreg"

    @Option(help: "The role's password file (mode 0600, owned by the user running the bench).")
    var postgresPasswordFile: String?

    var socketDir: String? { postgresSocketDir }

    /// The config text with `[storage]` and `[postgres]` added, when on PostgreSQL.
    func configure(_ text: String) -> String {
        guard let directory = postgresSocketDir else { return text }
        return text + """

            [storage]
            backend = "postgresql"

            [postgres]
            socket_dir = "\(directory)"
            port = \(postgresPort)
            database = "\(postgresDatabase)"
            user = "\(postgresUser)"
            password_file = "\(postgresPasswordFile ?? "")"
            max_connections = 16
            """
    }

    func describe(nodes: Int) -> String {
        postgresSocketDir == nil ? "sqlite" : "postgresql, \(nodes) node\(nodes == 1 ? "" : "s")"
    }

    /// The results' kind: `bench` on SQLite (what bench/compare.py reads), else `bench-postgresql-N`.
    func resultKind(nodes: Int) -> String {
        postgresSocketDir == nil ? "bench" : "bench-postgresql-\(nodes)"
    }
}
