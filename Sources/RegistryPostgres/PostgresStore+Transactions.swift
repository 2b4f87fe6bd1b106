import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import Synchronization

/// How the store's work reaches the database (docs/STORAGE.md §PostgreSQL, "Transactions").
///
/// - A read runs in one REPEATABLE READ, READ ONLY transaction: everything it reads (a subject
///   row, its records, its stamp) comes from one snapshot, as on SQLite. A read of one statement
///   (`readOneRow`) is sent on its own: PostgreSQL runs it from one snapshot by itself.
/// - A write runs at READ COMMITTED and locks what it decides on (`FOR UPDATE` of the subject
///   row), so that the database, not a lock in one process, settles a race between nodes.
///   Writes are committed in batches (PostgresGroupCommit.swift) that take the audit chain's
///   lock first, so batches of different nodes queue on it and never wait for each other in a
///   circle. Should the server still report a deadlock or a serialization failure, the whole
///   batch is run again.
/// - The answer is returned only after COMMIT returned (invariant 5).
extension PostgresStore {
    /// How often a write is run again after a deadlock or a serialization failure.
    static let writeAttempts = 5

    /// How long a request waits for a pooled connection before it is answered 503
    /// `storage_unavailable`: far above the wait of a busy pool (milliseconds), far below a
    /// client's patience.
    static let leaseWait: Duration = .seconds(5)

    func read<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StorageError) -> T {
        try await transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }

    /// The first row of `statement`, sent on its own: PostgreSQL runs a single statement in a
    /// transaction of its own, from one snapshot (the same guarantee as `read`), without the
    /// round trips of BEGIN and COMMIT. Only one statement is taken, so a second one, which
    /// would see another snapshot, cannot be added. What is done with the row (its MACs) is the
    /// caller's, after the connection went back to the pool.
    func readOneRow<Statement: HotStatement>(_ statement: Statement) async throws(StorageError) -> PostgresRow? {
        let logger = self.logger
        return try await transaction(begin: nil) { connection in try await connection.row(statement, logger: logger) }
    }

    /// A write: committed with the node's other pending writes in one batch
    /// (PostgresGroupCommit.swift), or, `bulk`, in a transaction of its own beside the batches.
    /// A bulk write must never take the audit chain's lock (the lock order of the batches).
    func write<T: Sendable>(
        bulk: Bool = false, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StorageError) -> T {
        guard bulk else {
            do { return try await groupCommit.write(body) } catch { throw Self.storageError(error) }
        }
        let recorder = AuditRecorder.current
        let appendedBefore = recorder?.appendedWithEffect ?? false
        var attempt = 1
        while true {
            do {
                return try await transaction(begin: "BEGIN ISOLATION LEVEL READ COMMITTED", guarded: true, body)
            } catch .database(let reason) where attempt < Self.writeAttempts && Self.isRetryable(reason) {
                // Rolled back by the server: run again from where it began.
                recorder?.restoreAppended(appendedBefore)
                attempt += 1
            } catch {
                recorder?.restoreAppended(appendedBefore)
                throw error
            }
        }
    }

    private func transaction<T: Sendable>(
        begin: String?, guarded: Bool = false, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws(StorageError) -> T {
        let logger = self.logger
        let client = self.client
        let leased = LeaseFlag()
        do {
            return try await Self.boundedLease(leased, limit: Self.leaseWait) {
                try await client.withConnection { connection in
                    // Too late: the caller was already told `unavailable`; nothing is begun.
                    guard leased.claim() else {
                        throw StorageError.unavailable(reason: "no connection to the database within \(Self.leaseWait)")
                    }
                    guard let begin else { return try await body(connection) }
                    try await connection.send(PostgresQuery(unsafeSQL: begin), logger: logger)
                    do {
                        let value = try await body(connection)
                        // PostgreSQL answers the COMMIT of an aborted transaction with ROLLBACK,
                        // not an error: before a write's, a statement makes sure the body left
                        // none (a read's has nothing to lose).
                        if guarded { try await connection.send("SELECT 1", logger: logger) }
                        try await connection.send("COMMIT", logger: logger)
                        return value
                    } catch {
                        // The connection goes back to the pool: leave it outside any transaction
                        // (unless it is gone, and the server rolled back by itself), also when
                        // the body swallowed an error and the guard or the COMMIT found it.
                        await connection.cleanUp("ROLLBACK", after: error, logger: logger)
                        throw error
                    }
                }
            }
        } catch {
            throw Self.storageError(error)
        }
    }

    /// Runs `work`, which leases a connection and sets `leased` once it has one. While the
    /// database is out of reach the pool would keep the lease waiting while it retries: after
    /// `limit` without a connection, the lease is cancelled and the call fails as `.unavailable`
    /// (503 `storage_unavailable`), never a hang. Once leased, the work is never cut short: a
    /// transaction is not abandoned between its COMMIT and the answer.
    static func boundedLease<T: Sendable>(
        _ leased: LeaseFlag, limit: Duration, _ work: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: LeaseOutcome<T>.self) { group in
            group.addTask { .done(try await work()) }
            group.addTask {
                // Also ends early when the caller is cancelled; then, as after the limit, the
                // work is abandoned only if it never got its connection.
                try? await Task.sleep(for: limit)
                return .waited
            }
            while let outcome = try await group.next() {
                switch outcome {
                case .done(let value):
                    group.cancelAll()
                    return value
                case .waited where leased.expire():
                    group.cancelAll()
                    throw StorageError.unavailable(reason: "no connection to the database within \(limit)")
                case .waited:
                    continue
                }
            }
            throw StorageError.unavailable(reason: "the database work ended without an answer")
        }
    }

    /// SQLSTATE 40001 (serialization failure) and 40P01 (deadlock detected): the transaction
    /// was rolled back by the server and may simply be run again.
    static let retryableStates: Set<String> = ["40001", "40P01"]

    static func isRetryable(_ reason: String) -> Bool {
        retryableStates.contains { reason.hasSuffix("(SQLSTATE \($0))") }
    }

    /// What the store's callers see: a `StorageError` thrown inside passes through; a decoding
    /// failure (a cell of another type than the schema's) is an integrity failure; anything
    /// else is a database error that names the SQLSTATE, never a parameter.
    static func storageError(_ error: any Error) -> StorageError {
        if let error = error as? StorageError { return error }
        if error is PostgresDecodingError { return .integrity(what: "a row (a cell of the wrong type)") }
        if let reason = PostgresErrors.unavailability(error) { return .unavailable(reason: reason) }
        return .database(reason: PostgresErrors.statementError(error).description)
    }
}

/// What finished first in `PostgresStore.boundedLease`: the work, or the wait for a connection.
enum LeaseOutcome<T: Sendable>: Sendable {
    case done(T)
    case waited
}

/// Whether a transaction got its connection before its wait ran out (`boundedLease`): exactly
/// one of `claim` (the connection came first) and `expire` (the wait ran out first) succeeds,
/// so a transaction is either begun and answered, or never begun and answered `unavailable`.
final class LeaseFlag: Sendable {
    private static let waiting = 0
    private static let leased = 1
    private static let expired = 2
    private let state = Atomic<Int>(LeaseFlag.waiting)

    /// The connection arrived: true unless the wait had already run out.
    func claim() -> Bool {
        state.compareExchange(expected: Self.waiting, desired: Self.leased, ordering: .acquiringAndReleasing).exchanged
    }

    /// The wait ran out: true unless the connection had already arrived.
    func expire() -> Bool {
        state.compareExchange(expected: Self.waiting, desired: Self.expired, ordering: .acquiringAndReleasing).exchanged
    }
}

extension PostgresConnection {
    /// Sends a clean-up statement (ROLLBACK, an unlock) after `error`, unless the connection is
    /// closed (the server rolled back by itself). A server error that left the connection
    /// working (a lock_timeout, a constraint) must be rolled back here, or the connection would
    /// go back to the pool inside an aborted transaction. `send` races the statement against
    /// the connection's close, so a connection lost meanwhile cannot hang it.
    func cleanUp(_ statement: PostgresQuery, after error: any Error, logger: Logger) async {
        guard !isClosed else { return }
        _ = try? await send(statement, logger: logger)
    }

    /// Throws `.unavailable` if the connection is closed: checked before a statement that
    /// follows other work (a COMMIT after a body, a job's record after the job), for the same
    /// reason as `cleanUp`; `send` also races the statement against the close.
    func requireOpen() throws(StorageError) {
        guard !isClosed else { throw .unavailable(reason: "the connection to the database was lost") }
    }

    /// Starts `query` and returns its rows as they come: every statement of the store goes
    /// through here. It fails `unavailable` at once if the connection is closed, and as soon as
    /// it closes while the statement waits (`ConnectionCloseWatch`), so a statement the driver
    /// dropped never hangs its caller. The caller must read the rows to their end: an error the
    /// server raises while the statement runs arrives with them.
    func stream(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRowSequence {
        try requireOpen()
        return try await ConnectionCloseWatch.shared.run(on: self) { try await self.query(query, logger: logger) }
    }

    /// Runs `query` to its end, its rows discarded. PostgresNIO answers a query once the server
    /// described its rows; an error raised while the statement then runs (a lock wait that
    /// timed out, a deadlock found, a constraint) comes with the rows. Left unread, it would be
    /// lost, and the next statement would fail with 25P02 in a transaction silently aborted.
    func send(_ query: PostgresQuery, logger: Logger) async throws {
        for try await _ in try await stream(query, logger: logger) {}
    }

    /// Every row of `query`.
    func rows(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        var rows: [PostgresRow] = []
        for try await row in try await stream(query, logger: logger) { rows.append(row) }
        return rows
    }

    /// The first row of `query`, if any.
    func row(_ query: PostgresQuery, logger: Logger) async throws -> PostgresRow? {
        try await rows(query, logger: logger).first
    }
}

extension PostgresCell {
    /// A BYTEA cell's bytes.
    func bytes() throws -> [UInt8] { Array(try decode(ByteBuffer.self).readableBytesView) }

    /// A nullable BYTEA cell's bytes.
    func optionalBytes() throws -> [UInt8]? { try decode(ByteBuffer?.self).map { Array($0.readableBytesView) } }
}

extension Array where Element == UInt8 {
    /// The bytes as a BYTEA parameter.
    var bytea: ByteBuffer { ByteBuffer(bytes: self) }
}
