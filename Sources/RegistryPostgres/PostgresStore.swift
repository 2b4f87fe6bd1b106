import Logging
internal import NIOSSL
internal import PostgresNIO
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import Synchronization

/// The PostgreSQL backend: several anonregd share one registry database (issue 17;
/// docs/STORAGE.md §PostgreSQL). `open` connects, checks durability, migrates the schema under
/// the migration lock and checks that the database goes with the node's keyring; the pool
/// (`PostgresClient`) then serves the store.
///
/// The storage contract (`RegistryBackend`, in RegistryCore) is implemented in part, one
/// extension per intent, each reaching the database through `client`:
/// - `PostgresStore+Subjects.swift`: enrolment, reads, changes, links, code re-issue;
/// - `PostgresStore+Queries.swift`: the due list and counters;
/// - `PostgresStore+Audit.swift`: the audit log, one chain for every node.
///
/// Not yet: erasure and the erasure ledger, the sweeper's and the backfill's methods, the
/// integrity check, statistics releases, key maintenance, backups and the lifecycle hooks. So it
/// does not declare `RegistryBackend` yet, and no composition root links it.
public final class PostgresStore: Sendable {
    public let config: PostgresConfig
    /// The migrations this open applied, in order: empty when the schema was already current
    /// (another node, or an earlier start, migrated it).
    public let migrationsApplied: [String]
    /// A signed audit checkpoint every this many entries (config `audit.checkpoint_every`).
    public let auditCheckpointEvery: Int

    /// The pool. Its `run()` is `runner`: a query waits for a connection only while it runs.
    let client: PostgresClient
    let runner: Task<Void, Never>
    let logger: Logger
    /// The keys, lent by whoever opened the store: it seals and opens with them and never
    /// replaces them. Every node holds the same keyring (docs/OPERATIONS.md §Several nodes).
    let keys: KeyCustody
    /// Secure slots the data keys of requests are unwrapped into (docs/CRYPTO.md §Secret memory).
    let dekSlab: SecureSlab
    /// The erasure ledger's references: a subject named there is never served. An erasure's
    /// reference joins it once the erasure committed (or at the next synchronisation).
    let erased = ErasedSubjects()
    /// The references this node appended to its ledger file: a transaction run again after a
    /// deadlock does not append the same one twice.
    let ledgerAppended = ErasedSubjects()
    /// Whether this node erased a subject since its last cleanup VACUUM (PostgresStore+Erasure).
    let erasedSinceVacuum = Atomic<Bool>(false)
    /// The registry's primary KEK version when this node's keyring lacks it, else 0
    /// (PostgresStore+KeyringPosition).
    let keyringBehindVersion = Atomic<Int>(0)
    /// This node's writes, committed in batches (PostgresGroupCommit.swift).
    let groupCommit: PostgresGroupCommit

    /// The keyring snapshot one operation uses.
    var keyring: Keyring { keys.current }

    /// The schema's migrations, in order (docs/STORAGE.md §PostgreSQL).
    public static var migrationNames: [String] { PostgresSchema.migrationNames }

    /// The `pg_advisory_xact_lock` key the migrations run under.
    public static var migrationLockKey: Int64 { PostgresSchema.migrationLockKey }

    /// Data keys held at once before unwraps fall back to allocations of their own.
    static let dekSlots = 256

    private init(
        config: PostgresConfig, client: PostgresClient, runner: Task<Void, Never>, logger: Logger, applied: [String],
        keys: KeyCustody, auditCheckpointEvery: Int, dekSlab: SecureSlab
    ) {
        self.config = config
        self.client = client
        self.runner = runner
        self.logger = logger
        self.migrationsApplied = applied
        self.keys = keys
        self.auditCheckpointEvery = auditCheckpointEvery
        self.dekSlab = dekSlab
        self.groupCommit = PostgresGroupCommit(client: client, logger: logger)
    }

    /// Opens the database: checks the settings and the password file, connects once (bounded by
    /// `connectTimeout`) so that an unreachable server or refused credentials are reported as
    /// such, starts the pool, refuses a server that is not durable, and migrates.
    public static func open(
        _ config: PostgresConfig, keys: KeyCustody, auditCheckpointEvery: Int = 1000,
        logger: Logger = Logger(label: "anonreg.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws(PostgresBackendError) -> PostgresStore {
        // PostgresNIO logs queries and their parameters at debug and trace: never below info,
        // whatever the daemon's own level (parameters are keyed hashes and ciphertext, but no
        // log needs them).
        var quieter = logger
        if quieter.logLevel < .info { quieter.logLevel = .info }
        let logger = quieter
        try config.validate()
        let dekSlab: SecureSlab
        do { dekSlab = try SecureSlab(slotBytes: XChaCha20Poly1305.keyBytes, slotCount: dekSlots) } catch {
            throw .configuration("secure memory unavailable (mlock limit)")
        }
        let binding: [UInt8]
        do { binding = try RowIntegrity.keyringBinding(keys.current) } catch {
            throw .configuration("the keyring's row MAC key cannot be used")
        }
        let password = try PasswordFile.read(config.passwordFile)
        let connection = try makeConnectionConfiguration(config, password: password)

        // One connection of our own first. The pool retries a failing connection for a minute
        // before it fails a request, and then without the cause; this says at once what is wrong.
        try await Deadline.run(config.connectTimeout, config: config) {
            let probe = try await PostgresConnection.connect(configuration: connection, id: 0, logger: logger)
            try? await probe.close()
        }

        let client = PostgresClient(configuration: try makeClientConfiguration(config, password: password), backgroundLogger: logger)
        let runner = Task { await client.run() }
        do {
            try await Deadline.run(config.connectTimeout, config: config) {
                try await checkDurability(client, logger: logger)
            }
            let applied = try await PostgresErrors.mapping {
                try await client.withConnection { connection in
                    try await PostgresSchema.migrate(connection, database: config.database, binding: binding, logger: logger)
                }
            }
            return PostgresStore(
                config: config, client: client, runner: runner, logger: logger, applied: applied, keys: keys,
                auditCheckpointEvery: auditCheckpointEvery, dekSlab: dekSlab)
        } catch {
            runner.cancel()
            await runner.value
            throw error
        }
    }

    /// Stops the pool: closes its connections and waits for them.
    public func close() async {
        runner.cancel()
        await runner.value
    }

    /// A store dropped without `close()` still stops its pool (without waiting for it).
    deinit { runner.cancel() }

    static func checkDurability(_ client: PostgresClient, logger: Logger) async throws {
        var settings: [(String, String, String)] = []
        let rows = try await client.query(PostgresQuery(unsafeSQL: PostgresDurability.query), logger: logger)
        for try await row in rows.decode((String, String, String).self) { settings.append(row) }
        guard let (fsync, synchronousCommit, fullPageWrites) = settings.first else {
            throw PostgresBackendError.server(sqlState: "", message: "the server did not answer for its settings")
        }
        try PostgresDurability.check(fsync: fsync, synchronousCommit: synchronousCommit, fullPageWrites: fullPageWrites)
    }
}

extension PostgresStore {
    /// Sent in every connection's start-up message: the name DBAs see in pg_stat_activity, and a
    /// search path of `public` alone, so that the schema is created and found there whatever
    /// the role's or database's default search path.
    static let startupParameters = [("application_name", "anonregd"), ("search_path", "public")]

    static func tls(caFile: String) throws(PostgresBackendError) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.certificateVerification = .fullVerification
        tls.trustRoots = .file(caFile)
        return tls
    }

    static func makeConnectionConfiguration(_ config: PostgresConfig, password: String) throws(PostgresBackendError)
        -> PostgresConnection.Configuration
    {
        var configuration: PostgresConnection.Configuration
        switch config.endpoint {
        case .unixSocket(let directory, let port):
            configuration = .init(
                unixSocketPath: PostgresConfig.socketPath(directory: directory, port: port), username: config.user,
                password: password, database: config.database)
        case .tcp(let host, let port, let caFile):
            guard let caFile else { throw .configuration("a TCP connection needs ca_file") }
            let context: NIOSSLContext
            do { context = try NIOSSLContext(configuration: try tls(caFile: caFile)) } catch {
                throw .configuration("ca_file \(caFile) cannot be used: \(PostgresErrors.reason(error))")
            }
            configuration = .init(
                host: host, port: port, username: config.user, password: password, database: config.database, tls: .require(context))
        }
        configuration.options.connectTimeout = .nanoseconds(Int64(config.connectTimeout.nanoseconds))
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }

    static func makeClientConfiguration(_ config: PostgresConfig, password: String) throws(PostgresBackendError)
        -> PostgresClient.Configuration
    {
        var configuration: PostgresClient.Configuration
        switch config.endpoint {
        case .unixSocket(let directory, let port):
            configuration = .init(
                unixSocketPath: PostgresConfig.socketPath(directory: directory, port: port), username: config.user,
                password: password, database: config.database)
        case .tcp(let host, let port, let caFile):
            guard let caFile else { throw .configuration("a TCP connection needs ca_file") }
            configuration = .init(
                host: host, port: port, username: config.user, password: password, database: config.database,
                tls: .require(try tls(caFile: caFile)))
        }
        configuration.options.connectTimeout = config.connectTimeout
        configuration.options.maximumConnections = config.maximumConnections
        configuration.options.additionalStartupParameters = startupParameters
        return configuration
    }
}

extension Duration {
    /// The whole duration in nanoseconds (saturating at Int64's range, far beyond any timeout).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}

/// A bound on how long a step of the start may wait for the server.
enum Deadline {
    /// Runs `body`, or fails it as unreachable once `limit` has passed (cancelling it: PostgresNIO's
    /// connect and the pool's lease both stop on cancellation).
    static func run(
        _ limit: Duration, config: PostgresConfig, _ body: @escaping @Sendable () async throws -> Void
    ) async throws(PostgresBackendError) {
        let finished: Bool
        do {
            finished = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await body()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: limit)
                    return false
                }
                let first = try await group.next() ?? false
                group.cancelAll()
                return first
            }
        } catch {
            throw PostgresErrors.connectError(error, config: config)
        }
        guard finished else {
            throw .unreachable(endpoint: config.endpointDescription, reason: "no answer within \(limit)")
        }
    }
}
