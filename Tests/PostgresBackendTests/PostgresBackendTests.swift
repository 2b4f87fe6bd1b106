import AnonregTestSupport
import Foundation
import RegistryPostgres
import Testing

/// The PostgreSQL backend's start (docs/STORAGE.md §PostgreSQL) against throwaway clusters
/// (`ThrowawayPostgres`): connecting, the durability check, the migrations under their lock, and
/// every refusal as its own typed error.
struct PostgresBackendTests {
    /// A connect timeout far above the daemon's default (10 s): under the full test run, a debug
    /// build's SCRAM exchange shares two cores with every other suite and has taken over 10 s.
    /// The tests that are about the timeout set their own.
    static let generousTimeout: Duration = .seconds(300)

    static func config(
        _ cluster: ThrowawayPostgres, database: String? = nil, passwordFile: String? = nil, timeout: Duration = generousTimeout
    ) -> PostgresConfig {
        PostgresConfig(
            endpoint: .unixSocket(directory: cluster.socketDirectory, port: cluster.port),
            database: database ?? cluster.database, user: cluster.user, passwordFile: passwordFile ?? cluster.passwordFile,
            connectTimeout: timeout)
    }

    /// The migrations table's rows: name and release, in order.
    static func recorded(_ cluster: ThrowawayPostgres, database: String? = nil) throws -> [String] {
        try cluster.psql(
            "SELECT name || ' ' || release || ' ' || applied_at FROM anonreg_migration ORDER BY position;",
            database: database ?? cluster.database
        )
        .split(separator: "\n").map(String.init)
    }

    /// The database's own relations (outside PostgreSQL's schemas), as `schema.name kind`.
    static func relations(_ cluster: ThrowawayPostgres, database: String) throws -> [String] {
        try cluster.psql(
            """
            SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1;
            """, database: database
        ).split(separator: "\n").map(String.init)
    }

    /// Runs `body`, expecting exactly the typed error `PostgresBackendError`; returns it.
    static func refusal(_ body: () async throws -> Void) async -> PostgresBackendError? {
        do {
            try await body()
            Issue.record("expected a PostgresBackendError; the call succeeded")
        } catch let error as PostgresBackendError {
            return error
        } catch {
            Issue.record("expected a PostgresBackendError, got \(type(of: error)): \(error)")
        }
        return nil
    }

    @Test func aFreshDatabaseIsMigratedWithItsTablesAndConstraints() async throws {
        let cluster = try ThrowawayPostgres()
        let store = try await PostgresStore.open(Self.config(cluster))
        await store.close()
        #expect(store.migrationsApplied == PostgresStore.migrationNames)
        let rows = try Self.recorded(cluster)
        #expect(rows.count == PostgresStore.migrationNames.count)
        #expect(rows.map { String($0.split(separator: " ")[0]) } == PostgresStore.migrationNames)

        let tables = try cluster.psql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1;", database: cluster.database
        ).split(separator: "\n").map(String.init)
        #expect(
            tables == [
                "anonreg_migration", "audit_checkpoint", "audit_entry", "audit_subject", "case_link", "counter", "erasure_ledger_entry",
                "erasure_ledger_head", "job_run", "kek_check", "kek_primary",
                "keyring_binding", "privacy_budget", "privacy_setting", "record", "stats_release", "subject", "unique_person_seen",
            ])
        // Sealed and keyed values are BYTEA; the daemon's role owns what it created.
        let types = try cluster.psql(
            """
            SELECT column_name || ' ' || data_type FROM information_schema.columns
            WHERE table_name = 'subject' AND column_name IN ('sid', 'wrapped_dek', 'code_index', 'row_mac') ORDER BY 1;
            """, database: cluster.database)
        #expect(types == "code_index bytea\nrow_mac bytea\nsid bytea\nwrapped_dek bytea")
        #expect(
            try cluster.psql("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public';", database: cluster.database)
                == cluster.user)

        // Constraints are in the schema: a sid of the wrong length and a malformed day are refused.
        let digest = String(repeating: "ab", count: 32)
        let insert = { (sid: String, due: String) in
            """
            INSERT INTO subject (sid, code_index, wrapped_dek, kek_version, status, next_due, records_head, row_mac)
            VALUES ('\\x\(sid)', '\\x\(digest)', '\\x\(String(repeating: "cd", count: 72))', 1, 'active', '\(due)',
                    '\\x\(digest)', '\\x\(digest)');
            """
        }
        #expect(throws: ThrowawayPostgres.Failure.self) { try cluster.psql(insert("00", "2026-01-31"), database: cluster.database) }
        #expect(throws: ThrowawayPostgres.Failure.self) {
            try cluster.psql(insert(String(repeating: "01", count: 16), "2026-13-01"), database: cluster.database)
        }
        try cluster.psql(insert(String(repeating: "01", count: 16), "2026-01-31"), database: cluster.database)
    }

    @Test func twoNodesStartingAtOnceMigrateOnce() async throws {
        let cluster = try ThrowawayPostgres()
        let config = Self.config(cluster)
        async let first = PostgresStore.open(config)
        async let second = PostgresStore.open(config)
        let stores = try await [first, second]
        for store in stores { await store.close() }
        // One applied every migration, the other found them applied and applied none.
        #expect(stores.map(\.migrationsApplied).sorted { $0.count < $1.count } == [[], PostgresStore.migrationNames])
        #expect(try Self.recorded(cluster).count == PostgresStore.migrationNames.count)
    }

    @Test func aRestartRunsNoMigrationAgain() async throws {
        let cluster = try ThrowawayPostgres()
        let first = try await PostgresStore.open(Self.config(cluster))
        await first.close()
        let before = try Self.recorded(cluster)
        let again = try await PostgresStore.open(Self.config(cluster))
        await again.close()
        #expect(first.migrationsApplied == PostgresStore.migrationNames)
        #expect(again.migrationsApplied == [])
        // Same rows, same times: nothing was recorded or re-applied.
        #expect(try Self.recorded(cluster) == before)
    }

    @Test func aServerWithFsyncOffIsRefused() async throws {
        let cluster = try ThrowawayPostgres(.init(fsync: false))
        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster)) }
        #expect(error == .notDurable(setting: "fsync", value: "off"))
        // Refused before migrating: the database is as it was created.
        #expect(try Self.relations(cluster, database: cluster.database) == [])
    }

    /// Without full-page images a page torn by a power cut cannot be rebuilt from the WAL, so
    /// an acknowledged row could be lost after an OS crash even with fsync on.
    @Test func aServerWithFullPageWritesOffIsRefused() async throws {
        let cluster = try ThrowawayPostgres(.init(fullPageWrites: false))
        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster)) }
        #expect(error == .notDurable(setting: "full_page_writes", value: "off"))
        #expect(try Self.relations(cluster, database: cluster.database) == [])
    }

    @Test func synchronousCommitLocalIsRefused() async throws {
        let cluster = try ThrowawayPostgres(.init(synchronousCommit: "local"))
        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster)) }
        #expect(error == .notDurable(setting: "synchronous_commit", value: "local"))
        #expect(error?.description.contains("on or remote_apply") == true)
        #expect(try Self.relations(cluster, database: cluster.database) == [])
    }

    /// A per-database setting is what the daemon's sessions get, so it counts too; remote_apply
    /// is accepted.
    @Test func theSessionsOwnSettingIsChecked() async throws {
        let cluster = try ThrowawayPostgres()
        try cluster.psql("ALTER DATABASE \(cluster.database) SET synchronous_commit = remote_write;")
        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster)) }
        #expect(error == .notDurable(setting: "synchronous_commit", value: "remote_write"))
        try cluster.psql("ALTER DATABASE \(cluster.database) SET synchronous_commit = remote_apply;")
        let store = try await PostgresStore.open(Self.config(cluster))
        await store.close()
        #expect(store.migrationsApplied == PostgresStore.migrationNames)
    }

    @Test func aWrongPasswordIsAnAuthenticationFailure() async throws {
        let cluster = try ThrowawayPostgres()
        let wrong = cluster.writeClientFile("wrong-password", "not-the-password\n")
        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster, passwordFile: wrong)) }
        guard case .authenticationFailed(let endpoint, let user, let database, let reason) = error else {
            Issue.record("expected authenticationFailed, got \(String(describing: error))")
            return
        }
        #expect(endpoint == cluster.socketDirectory + "/.s.PGSQL.\(cluster.port)")
        #expect(user == cluster.user && database == cluster.database)
        #expect(reason.contains("password authentication failed"))
        // No message carries a password: neither the wrong one nor the right one.
        let right = try String(contentsOfFile: cluster.passwordFile, encoding: .utf8).trimmingCharacters(in: .newlines)
        #expect(!error!.description.contains("not-the-password") && !error!.description.contains(right))
    }

    /// The refusal names the missing file, so it came from the connect itself and not from the
    /// deadline (whose reason is "no answer within"). No wall-clock bound: the test run shares
    /// two cores with every other suite, and speed is for the benchmarks.
    @Test(.timeLimit(.minutes(10)))
    func aMissingSocketDirectoryIsUnreachable() async throws {
        let cluster = try ThrowawayPostgres()
        var config = Self.config(cluster)
        let missing = cluster.clientDirectory + "/no-such-directory"
        config.endpoint = .unixSocket(directory: missing, port: cluster.port)
        config.connectTimeout = .seconds(3600)
        let error = await Self.refusal { _ = try await PostgresStore.open(config) }
        guard case .unreachable(let endpoint, let reason) = error else {
            Issue.record("expected unreachable, got \(String(describing: error))")
            return
        }
        #expect(endpoint == missing + "/.s.PGSQL.\(cluster.port)")
        #expect(reason.contains("No such file or directory"), "\(reason)")
    }

    /// A socket that accepts but never answers (a hung server): the connect is bounded by
    /// `connectTimeout` and reported as unreachable, not waited on forever. The time limit is
    /// only a hang guard; how soon after the deadline the refusal comes depends on the load
    /// of the whole test run, so no upper bound is asserted.
    @Test(.timeLimit(.minutes(10)))
    func aServerThatNeverAnswersIsUnreachableAfterTheTimeout() async throws {
        let directory = TemporaryDirectory()
        let listener = try SilentListener(
            path: PostgresConfig.socketPath(directory: directory.path, port: ThrowawayPostgres.socketOnlyPort))
        defer { listener.close() }
        let password = directory.sub("password")
        directory.write(Array("secret\n".utf8), to: password)
        let config = PostgresConfig(
            endpoint: .unixSocket(directory: directory.path, port: ThrowawayPostgres.socketOnlyPort), database: "anonreg", user: "anonreg",
            passwordFile: password, connectTimeout: .seconds(1))
        let started = ContinuousClock.now
        let error = await Self.refusal { _ = try await PostgresStore.open(config) }
        let elapsed = ContinuousClock.now - started
        guard case .unreachable(_, let reason) = error else {
            Issue.record("expected unreachable, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("no answer within"), "\(reason)")
        #expect(elapsed >= .seconds(1), "\(elapsed)")
    }

    @Test func anotherApplicationsDatabaseIsRefusedAndLeftUnchanged() async throws {
        let cluster = try ThrowawayPostgres()
        try cluster.createDatabase("shop")
        try cluster.psql(
            """
            CREATE TABLE invoice (id integer PRIMARY KEY, total numeric NOT NULL);
            INSERT INTO invoice VALUES (1, 12.50), (2, 7.00);
            ALTER TABLE invoice OWNER TO \(cluster.user);
            """, database: "shop")
        let relationsBefore = try Self.relations(cluster, database: "shop")
        let rowsBefore = try cluster.psql("SELECT * FROM invoice ORDER BY id;", database: "shop")

        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster, database: "shop")) }
        #expect(error == .foreignDatabase(database: "shop", tables: ["public.invoice"]))
        #expect(try Self.relations(cluster, database: "shop") == relationsBefore)
        #expect(try cluster.psql("SELECT * FROM invoice ORDER BY id;", database: "shop") == rowsBefore)
        #expect(try cluster.psql("SELECT to_regclass('public.anonreg_migration') IS NULL;", database: "shop") == "t")
    }

    @Test func aDatabaseMigratedByANewerReleaseIsRefused() async throws {
        let cluster = try ThrowawayPostgres()
        let store = try await PostgresStore.open(Self.config(cluster))
        await store.close()
        try cluster.psql(
            "INSERT INTO anonreg_migration (position, name, release) VALUES (1000, 'pg9-from-the-future', '9.9.9');",
            database: cluster.database)
        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster)) }
        #expect(error == .newerSchema(database: cluster.database, migrations: ["pg9-from-the-future"], releases: ["9.9.9"]))
    }

    @Test func aPasswordFileOthersCanReadIsRefused() async throws {
        let cluster = try ThrowawayPostgres()
        let password = try String(contentsOfFile: cluster.passwordFile, encoding: .utf8)
        let open = cluster.writeClientFile("password-0644", password, mode: 0o644)
        let error = await Self.refusal { _ = try await PostgresStore.open(Self.config(cluster, passwordFile: open)) }
        guard case .passwordFile(let path, let reason) = error else {
            Issue.record("expected passwordFile, got \(String(describing: error))")
            return
        }
        #expect(path == open)
        #expect(reason.contains("0644"), "\(reason)")
        // Nothing was contacted: the database is untouched.
        #expect(try Self.relations(cluster, database: cluster.database) == [])

        // The same password, mode 0600 (and 0400), opens.
        chmod(open, 0o400)
        let store = try await PostgresStore.open(Self.config(cluster, passwordFile: open))
        await store.close()
    }
}

/// The password file's other rules and the settings checks, which need no server.
struct PostgresConfigTests {
    @Test func passwordFileRules() async throws {
        let directory = TemporaryDirectory()
        let config = { (file: String) in
            PostgresConfig(
                endpoint: .unixSocket(directory: directory.path, port: 5432), database: "anonreg", user: "anonreg", passwordFile: file)
        }
        func reason(_ file: String) async -> String? {
            do {
                _ = try await PostgresStore.open(config(file))
                Issue.record("expected a refusal of \(file)")
            } catch {
                if case .passwordFile(_, let reason) = error { return reason }
                Issue.record("expected passwordFile, got \(error)")
            }
            return nil
        }
        #expect(await reason(directory.sub("absent"))?.contains("does not exist") == true)
        directory.write(Array("x\n".utf8), to: directory.sub("real"))
        symlink(directory.sub("real"), directory.sub("link"))
        #expect(await reason(directory.sub("link"))?.contains("symbolic link") == true)
        mkdir(directory.sub("dir"), 0o700)
        #expect(await reason(directory.sub("dir"))?.contains("not a regular file") == true)
        directory.write([], to: directory.sub("empty"))
        #expect(await reason(directory.sub("empty"))?.contains("empty") == true)
        directory.write(Array("one\ntwo\n".utf8), to: directory.sub("two-lines"))
        #expect(await reason(directory.sub("two-lines"))?.contains("more than one line") == true)
        directory.write(Array("x\n".utf8), to: directory.sub("group"))
        chmod(directory.sub("group"), 0o640)
        #expect(await reason(directory.sub("group"))?.contains("0640") == true)
        if geteuid() == 0 {
            // Owned by someone else (as root the test can give it away).
            directory.write(Array("x\n".utf8), to: directory.sub("theirs"))
            chown(directory.sub("theirs"), 65534, 65534)
            #expect(await reason(directory.sub("theirs"))?.contains("owned by uid 65534") == true)
        }
    }

    @Test func tcpWithoutACAFileIsAConfigurationError() {
        let config = PostgresConfig(
            endpoint: .tcp(host: "db.example", port: 5432, caFile: nil), database: "anonreg", user: "anonreg", passwordFile: "/run/pw")
        #expect(throws: PostgresBackendError.self) { try config.validate() }
        do {
            try config.validate()
        } catch {
            guard case .configuration(let reason) = error else {
                Issue.record("expected configuration, got \(error)")
                return
            }
            #expect(reason.contains("needs ca_file"))
        }
    }

    @Test func settingsThatCannotWorkAreRefusedBeforeConnecting() {
        let good = PostgresConfig(
            endpoint: .unixSocket(directory: "/run/postgresql", port: 5432), database: "anonreg", user: "anonreg", passwordFile: "/run/pw")
        #expect(throws: Never.self) { try good.validate() }
        var relative = good
        relative.passwordFile = "pw"
        var longName = good
        longName.database = String(repeating: "d", count: 64)
        var badPort = good
        badPort.endpoint = .unixSocket(directory: "/run/postgresql", port: 0)
        var longSocket = good
        longSocket.endpoint = .unixSocket(directory: "/" + String(repeating: "s", count: 100), port: 5432)
        var missingCA = good
        missingCA.endpoint = .tcp(host: "db.example", port: 5432, caFile: "/nonexistent/ca.pem")
        for config in [relative, longName, badPort, longSocket, missingCA] {
            #expect(throws: PostgresBackendError.self) { try config.validate() }
        }
    }
}

/// A Unix socket that is listened on but never accepted: a connect succeeds (the backlog takes
/// it) and then nothing is ever said.
final class SilentListener: Sendable {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw POSIXError(.ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    func close() { _ = Glibc.close(fd) }
}
