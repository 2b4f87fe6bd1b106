import Logging
internal import PostgresNIO
import RegistryCore
import Synchronization

/// Group commit on PostgreSQL (docs/STORAGE.md §PostgreSQL, "Group commit").
///
/// Every audited write appends to the one audit chain under the chain's lock, which it holds
/// until its COMMIT returns: one write at a time, each waiting for its own WAL flush, made a node
/// do about 330 check-ups a second whatever the number of clients (docs/PERFORMANCE.md). Here a
/// node's writes queue, and one task runs them in batches: one READ COMMITTED transaction per
/// batch, the chain's lock taken first, each write in a savepoint of its own, one COMMIT (one WAL
/// flush) for the whole batch. The same design as SQLite's `GroupCommitWriter`.
///
/// - A write that fails (a stale stamp, a refusal, a constraint) is rolled back to its savepoint
///   and fails alone; the others commit.
/// - Nobody is answered before the COMMIT holding their write returned (invariant 5). If the
///   COMMIT fails, every write of the batch fails with it and none is acknowledged.
/// - A deadlock or a serialization failure anywhere in the batch runs the whole batch again; a
///   lost connection fails the batch's writes `unavailable`.
/// - Lock order: the chain's lock first, then rows, the KEK lock shared, the statistics lock.
///   Batches of different nodes queue on the chain's lock before touching anything else, so they
///   never wait for each other in a circle. Writes that never audit (a rewrap batch, a monthly
///   fold, the summary backfill: `write(bulk:)`) run in transactions of their own beside the
///   batches and never take the chain's lock.
/// - Fairness between peers, as on SQLite (docs/ROBUSTNESS.md §Resource limits): writes queue
///   per `RequestLane`, and a batch takes one write from each lane in turn, at most `maxBatch`.
final class PostgresGroupCommit: Sendable {
    /// The most writes one transaction holds.
    static let maxBatch = 64

    private struct State {
        var lanes = FairQueue<any PendingPostgresWrite>()
        var draining = false
    }

    private let state = Mutex(State())
    private let commits = Atomic<Int>(0)
    private let writes = Atomic<Int>(0)
    private let client: PostgresClient
    private let logger: Logger

    init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Batches committed so far, and the writes they held (benchmarks and tests).
    var counts: (commits: Int, writes: Int) { (commits.load(ordering: .relaxed), writes.load(ordering: .relaxed)) }

    /// Queue entries not yet taken into a batch, answered ones not yet dropped included: tests
    /// order their writes by it.
    var queued: Int { state.withLock { $0.lanes.count } }

    /// How long a write may wait in the queue for its batch before it is answered 503
    /// `storage_unavailable` and never run. Far above a busy node's queue (a batch of 64 takes
    /// tens of milliseconds), below a client's patience: the writes queued behind a batch stuck
    /// on a database that stopped answering are answered after this long. The stuck batch's own
    /// writes wait for its connection to fail: at once when the server closes it, up to the
    /// kernel's TCP timeout when a server host vanishes without a word (docs/OPERATIONS.md
    /// §PostgreSQL and several nodes, "Outages").
    static let queueWait: Duration = .seconds(30)

    /// Set at the start of each batch's transaction, so that no wait in it is unbounded: a lock
    /// held elsewhere (another node's batch, a database administrator's session) for 30 s, or a
    /// statement the server runs for 30 s, fails `unavailable` (SQLSTATE 55P03, 57014): the
    /// write it happens in, or the batch if it is the batch's wait for the chain's lock. 30 s,
    /// not less: on a loaded host another node's batch can hold the chain's lock for seconds.
    /// Deadlocks are found sooner (PostgreSQL's `deadlock_timeout`, 1 s by default).
    static let batchLimits =
        "SELECT set_config('lock_timeout', '\(lockTimeout)', true), set_config('statement_timeout', '\(statementTimeout)', true)"
    static let lockTimeout = "30s"
    static let statementTimeout = "30s"

    /// Runs `body` in the next batch and returns its value once that batch committed. A write
    /// still queued after `queueWait`, or whose caller is cancelled while it is queued, is
    /// answered at once and never run; once its batch took it, it is answered only after the
    /// batch's COMMIT (or its failure).
    func write<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let pending = PendingWrite(body: body)
        let lane = RequestLane.current ?? RequestLane.system
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard pending.attach(continuation) else { return }
                // Started before the write is queued, so that the drain's claim always finds it
                // to cancel.
                pending.startTimer(after: Self.queueWait)
                let startDrain = state.withLock { state -> Bool in
                    state.lanes.append(pending, lane: lane)
                    guard !state.draining else { return false }
                    state.draining = true
                    return true
                }
                // Detached: the drain serves every caller, and inherits no caller's
                // cancellation or task-locals.
                if startDrain { Task.detached { await self.drain() } }
            }
        } onCancel: {
            pending.abandon(CancellationError())
        }
    }

    private func drain() async {
        while true {
            let taken = state.withLock { state -> [any PendingPostgresWrite] in
                let batch = state.lanes.take(Self.maxBatch)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if taken.isEmpty { return }
            // Writes that waited too long, or whose callers went away, were answered already.
            let batch = taken.filter { $0.claim() }
            if batch.isEmpty { continue }
            let failure = await commit(batch)
            if failure == nil {
                commits.add(1, ordering: .relaxed)
                writes.add(batch.count, ordering: .relaxed)
            }
            for item in batch { item.finish(commitError: failure) }
        }
    }

    /// Runs `batch` in one transaction, again after a deadlock or a serialization failure.
    /// Returns what failed the whole batch, or nil once it committed.
    private func commit(_ batch: [any PendingPostgresWrite]) async -> StorageError? {
        var attempt = 1
        while true {
            do {
                try await commitOnce(batch)
                return nil
            } catch {
                let failure = PostgresStore.storageError(error)
                if case .database(let reason) = failure, attempt < PostgresStore.writeAttempts, PostgresStore.isRetryable(reason) {
                    attempt += 1
                    continue
                }
                return failure
            }
        }
    }

    private func commitOnce(_ batch: [any PendingPostgresWrite]) async throws {
        let client = self.client
        let logger = self.logger
        let leased = LeaseFlag()
        try await PostgresStore.boundedLease(leased, limit: PostgresStore.leaseWait) {
            try await client.withConnection { connection in
                guard leased.claim() else {
                    throw StorageError.unavailable(reason: "no connection to the database within \(PostgresStore.leaseWait)")
                }
                try await connection.send("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
                do {
                    try await connection.send(PostgresQuery(unsafeSQL: Self.batchLimits), logger: logger)
                    // The chain's lock first (see the type's comment).
                    try await connection.send("SELECT pg_advisory_xact_lock(\(PostgresStore.auditLockKey))", logger: logger)
                    let chain = BatchChain()
                    for item in batch {
                        // Not released: a savepoint per write nests in the one before, and
                        // ROLLBACK TO names the newest. Released or not, each write's
                        // subtransaction id counts until COMMIT, so a batch stays within the 64
                        // a server process caches (`maxBatch`).
                        try await connection.send("SAVEPOINT anonreg_write", logger: logger)
                        if let error = await BatchChain.$current.withValue(chain, operation: { await item.run(connection) }) {
                            // A lost connection, a deadlock or a serialization failure is the
                            // batch's; anything else is this write's alone.
                            if Self.failsTheBatch(error) { throw error }
                            try await connection.send("ROLLBACK TO SAVEPOINT anonreg_write", logger: logger)
                            // What it appended is gone: the next append reads the head again.
                            chain.head = nil
                        }
                    }
                    // A COMMIT of a transaction that an error left aborted answers ROLLBACK, not
                    // an error: a statement first makes sure that no write swallowed one.
                    try await connection.send("SELECT 1", logger: logger)
                    try connection.requireOpen()
                    try await connection.send("COMMIT", logger: logger)
                } catch {
                    await connection.cleanUp("ROLLBACK", after: error, logger: logger)
                    throw error
                }
            }
        }
    }

    /// Whether a write's error ends its whole batch: a lost connection, a deadlock or a
    /// serialization failure. A lock or statement timeout inside one write is that write's own
    /// (answered 503 after its savepoint is rolled back); the batch's own wait for the chain's
    /// lock runs outside any write, and a timeout there fails the batch.
    static func failsTheBatch(_ error: any Error) -> Bool {
        if let state = PostgresErrors.sqlState(error), ["55P03", "57014"].contains(state) { return false }
        switch PostgresStore.storageError(error) {
        case .unavailable: return true
        case .database(let reason): return PostgresStore.isRetryable(reason)
        default: return false
        }
    }
}

/// The batch a write runs in, as its audit append sees it (a task-local the drain sets around
/// each write): the chain's lock is held already, and `head` is the chain's head after the
/// batch's last append, unless a write was rolled back since. Touched only by the drain task,
/// one write after another.
final class BatchChain: @unchecked Sendable {
    @TaskLocal static var current: BatchChain?

    var head: (seq: Int64, hash: [UInt8])?
}

/// One queued write, as the drain task sees it.
private protocol PendingPostgresWrite: AnyObject, Sendable {
    /// The drain takes the write into its batch: false if it was answered already (it waited
    /// too long, or its caller was cancelled).
    func claim() -> Bool
    /// Runs the write on the batch's connection; returns its error, if it failed.
    func run(_ connection: PostgresConnection) async -> (any Error)?
    func finish(commitError: StorageError?)
}

/// One queued write. Who answers it is settled under `state`: the timer or a cancellation while
/// it is queued, or the drain once it claimed it, never both. Its result is touched only by the
/// drain task, in sequence.
private final class PendingWrite<T: Sendable>: PendingPostgresWrite, @unchecked Sendable {
    private enum State {
        /// Not yet queued; `abandoned` holds an answer given before it was.
        case new
        case abandoned(any Error)
        case queued(CheckedContinuation<T, any Error>)
        case claimed(CheckedContinuation<T, any Error>)
        case answered
    }

    let body: @Sendable (PostgresConnection) async throws -> T
    private let state = Mutex<State>(.new)
    private let timer = Mutex<Task<Void, Never>?>(nil)
    /// The request's audit context, and whether its entry was appended before this write: a run
    /// that does not commit puts it back (`AuditRecorder.restoreAppended`).
    let recorder: AuditRecorder?
    let appendedBefore: Bool
    private var result: Result<T, any Error>?

    init(body: @escaping @Sendable (PostgresConnection) async throws -> T) {
        self.body = body
        // Read on the caller's task: the drain task has no task-locals.
        recorder = AuditRecorder.current
        appendedBefore = recorder?.appendedWithEffect ?? false
    }

    /// Takes the caller's continuation; false (the continuation answered) if the caller was
    /// cancelled before.
    func attach(_ continuation: CheckedContinuation<T, any Error>) -> Bool {
        let early = state.withLock { state -> (any Error)? in
            if case .abandoned(let error) = state {
                state = .answered
                return error
            }
            state = .queued(continuation)
            return nil
        }
        guard let early else { return true }
        continuation.resume(throwing: early)
        return false
    }

    /// After `wait`, a write still queued is answered `unavailable` and never run.
    func startTimer(after wait: Duration) {
        let task = Task.detached { [weak self] in
            try? await Task.sleep(for: wait)
            guard !Task.isCancelled else { return }
            self?.abandon(StorageError.unavailable(reason: "the write waited \(wait) for the database and was not run"))
        }
        timer.withLock { $0 = task }
    }

    func abandon(_ error: any Error) {
        let continuation = state.withLock { state -> CheckedContinuation<T, any Error>? in
            switch state {
            case .new:
                state = .abandoned(error)
                return nil
            case .queued(let continuation):
                state = .answered
                return continuation
            case .abandoned, .claimed, .answered:
                return nil
            }
        }
        continuation?.resume(throwing: error)
        timer.withLock { $0?.cancel() }
    }

    func claim() -> Bool {
        let claimed = state.withLock { state -> Bool in
            guard case .queued(let continuation) = state else { return false }
            state = .claimed(continuation)
            return true
        }
        if claimed { timer.withLock { $0?.cancel() } }
        return claimed
    }

    func run(_ connection: PostgresConnection) async -> (any Error)? {
        // A batch run again after a deadlock runs every write again, from where it began.
        recorder?.restoreAppended(appendedBefore)
        do {
            result = .success(try await body(connection))
            return nil
        } catch {
            // Rolled back to its savepoint: an entry it appended is gone.
            recorder?.restoreAppended(appendedBefore)
            result = .failure(error)
            return error
        }
    }

    func finish(commitError: StorageError?) {
        let continuation = state.withLock { state -> CheckedContinuation<T, any Error>? in
            guard case .claimed(let continuation) = state else { return nil }
            state = .answered
            return continuation
        }
        guard let continuation else { return }
        if let commitError {
            recorder?.restoreAppended(appendedBefore)
            // Nothing of the batch committed: a write that failed on its own keeps its own error.
            if case .failure(let own)? = result, !PostgresGroupCommit.failsTheBatch(own) {
                continuation.resume(throwing: own)
            } else {
                continuation.resume(throwing: commitError)
            }
        } else {
            continuation.resume(with: result ?? .failure(StorageError.database(reason: "a write was not run")))
        }
    }
}
