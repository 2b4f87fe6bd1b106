internal import GRDB
import RegistryCore
import RegistryProtocol
import Synchronization

/// Group commit: concurrent writes are queued and run together in one SQLite transaction, each
/// inside its own savepoint, so one fsync (`synchronous=FULL`) makes a whole batch durable.
/// Nobody is answered before the commit that contains their write has returned; a write whose
/// savepoint failed is rolled back alone and the rest of the batch still commits.
///
/// Bulk writes (a rewrap batch of a thousand DEKs) run in a transaction of their own, and the
/// writer alternates: everything queued, then one bulk write, then everything queued since, and
/// so on. A request's write or audit entry therefore waits for at most one bulk transaction,
/// never for a chain of them, and a bulk job still gets every other commit under full load.
///
/// Fairness between peers (docs/ROBUSTNESS.md §Resource limits): writes queue per lane (the
/// clinic or admin the request is for, `RequestLane`), and a batch takes one write from each
/// lane in turn, up to `maxBatch` writes. A clinic with one write waiting is therefore in the
/// next batch whatever another clinic has queued, and that batch is at most `maxBatch` writes
/// long. Durability is unchanged: nobody is answered before the commit holding their write.
final class GroupCommitWriter: Sendable {
    private let pool: DatabasePool
    private let state = Mutex(State())
    private let commits = Atomic<Int>(0)
    /// Set when a WAL truncation after an erasure could not complete (a long reader held the
    /// WAL); every later batch retries until it succeeds.
    private let truncatePending = Atomic<Bool>(false)

    /// Whether erased data may still sit in WAL frames (a truncation is still pending).
    var walTruncationPending: Bool { truncatePending.load(ordering: .relaxed) }

    /// Called by a write that erased something: the batch it is in truncates the WAL after its
    /// commit (and later batches retry until that succeeds).
    func requestTruncation() { truncatePending.store(true, ordering: .relaxed) }

    /// Transactions committed so far (each is one fsync of the WAL). Benchmarks and tests
    /// compare it with the number of writes.
    var commitCount: Int { commits.load(ordering: .relaxed) }

    /// The most writes one batch (one transaction, one fsync) holds.
    static let maxBatch = 64

    private struct State {
        var lanes = FairQueue<any PendingWrite>()
        var bulk: [any PendingWrite] = []
        var draining = false
    }

    /// Bulk writes committed so far, each in a transaction of its own (tests).
    private let bulkCommits = Atomic<Int>(0)
    var bulkCommitCount: Int { bulkCommits.load(ordering: .relaxed) }

    /// Writes waiting for the writer right now, request writes and bulk writes (tests).
    var waiting: (writes: Int, bulk: Int) { state.withLock { ($0.lanes.count, $0.bulk.count) } }

    /// Told about every commit; copies the WAL into the database off the writer's path.
    private let checkpointer: WALCheckpointer?

    init(pool: DatabasePool, checkpointer: WALCheckpointer?) {
        self.pool = pool
        self.checkpointer = checkpointer
    }

    /// Runs `operation` in the next batch and returns once that batch is durable.
    /// `checkpointAfter` asks for `wal_checkpoint(TRUNCATE)` after the commit (erasure).
    /// `bulk` runs it alone, between batches of the other writes (see the type's comment).
    func write<T: Sendable>(
        checkpointAfter: Bool = false, bulk: Bool = false,
        _ operation: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let pending = Pending(operation: operation, continuation: continuation, wantsCheckpoint: checkpointAfter)
            let lane = RequestLane.current ?? RequestLane.system
            let startDrain = state.withLock { state -> Bool in
                if bulk { state.bulk.append(pending) } else { state.lanes.append(pending, lane: lane) }
                if state.draining { return false }
                state.draining = true
                return true
            }
            if startDrain {
                Task.detached { await self.drain() }
            }
        }
    }

    private func drain() async {
        // Alternates between the queued writes and one bulk write, so that neither waits for
        // more than one transaction of the other.
        var bulkTurn = false
        while true {
            let (batch, isBulk) = state.withLock { state -> ([any PendingWrite], Bool) in
                if bulkTurn || state.lanes.isEmpty, !state.bulk.isEmpty {
                    return ([state.bulk.removeFirst()], true)
                }
                let batch = state.lanes.take(Self.maxBatch)
                if batch.isEmpty { state.draining = false }
                return (batch, false)
            }
            if batch.isEmpty { return }
            // After a bulk write the queued writes go next, and after them a bulk write again.
            bulkTurn = !isBulk
            var commitError: (any Error)? = nil
            do {
                try await pool.writeWithoutTransaction { db in
                    try db.inTransaction(.immediate) {
                        for item in batch {
                            item.run(db)
                            // SQLite rolls a transaction back by itself on some errors (disk
                            // full, I/O): then nothing of this batch survives, and later items
                            // must not run (each would commit on its own, outside the batch).
                            guard db.isInsideTransaction else { throw StorageError.storageFull }
                        }
                        return .commit
                    }
                }
                commits.add(1, ordering: .relaxed)
                checkpointer?.noteCommit()
                if isBulk { bulkCommits.add(1, ordering: .relaxed) }
            } catch {
                commitError = error
            }
            if commitError == nil, batch.contains(where: \.wantsCheckpoint) || truncatePending.load(ordering: .relaxed) {
                // After erasure: move the WAL into the database (secure_delete zeroes the freed
                // cells there) and truncate the WAL so the old frames are gone from disk too. If a
                // reader holds the WAL past the busy timeout, retry with every later batch.
                await truncateWAL()
            }
            for item in batch { item.finish(commitError: commitError) }
            if let checkpointer, checkpointer.writerShouldCatchUp {
                // After the batch was answered, before the next one: copy what the checkpointer
                // has not, so that the next write restarts the WAL (WALCheckpointer).
                // Only while the checkpointer is idle; else it is tried after the next batch.
                let result = await checkpointer.ifIdle {
                    try? await pool.writeWithoutTransaction { db in try WALCheckpointer.passiveCheckpoint(db) }
                }
                if result != nil { checkpointer.writerCheckpointed() }
            }
        }
    }
}

extension GroupCommitWriter {
    /// Runs `wal_checkpoint(TRUNCATE)`; remembers a failure so that it is retried.
    @discardableResult
    func truncateWAL() async -> Bool {
        do {
            // Never while the background checkpointer holds SQLite's checkpoint lock.
            let truncate = { [pool] () async throws in try await pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) } }
            if let checkpointer { try await checkpointer.whilePaused(truncate) } else { try await truncate() }
            truncatePending.store(false, ordering: .relaxed)
            return true
        } catch {
            truncatePending.store(true, ordering: .relaxed)
            return false
        }
    }
}

private protocol PendingWrite: AnyObject, Sendable {
    var wantsCheckpoint: Bool { get }
    func run(_ db: Database)
    func finish(commitError: (any Error)?)
}

/// One queued write. Mutable state is touched only by the single drain task, in sequence.
private final class Pending<T: Sendable>: PendingWrite, @unchecked Sendable {
    let operation: @Sendable (Database) throws -> T
    let continuation: CheckedContinuation<T, any Error>
    let wantsCheckpoint: Bool
    private var result: Result<T, any Error>?

    init(operation: @escaping @Sendable (Database) throws -> T, continuation: CheckedContinuation<T, any Error>, wantsCheckpoint: Bool) {
        self.operation = operation
        self.continuation = continuation
        self.wantsCheckpoint = wantsCheckpoint
    }

    func run(_ db: Database) {
        var value: T? = nil
        do {
            try db.inSavepoint {
                value = try operation(db)
                return .commit
            }
            result = .success(value!)
        } catch {
            result = .failure(error)
        }
    }

    func finish(commitError: (any Error)?) {
        if let commitError, case .success = result {
            continuation.resume(throwing: commitError)
        } else {
            continuation.resume(with: result ?? .failure(commitError ?? StorageError.database(reason: "write was not run")))
        }
    }
}
