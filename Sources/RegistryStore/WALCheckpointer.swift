internal import GRDB
import Synchronization

/// Copies committed WAL frames into the database file on a connection of its own, so that the
/// group-commit writer never does it inside a request's commit (docs/PERFORMANCE.md,
/// finding 4).
///
/// - SQLite's automatic checkpoint (`wal_autocheckpoint`, every 1000 pages) runs in the
///   committing connection, right after its commit: every few hundred commits one request's
///   answer, and every write queued behind it, waited for 1000 page copies and an fsync of the
///   database file. The store turns it off on every connection.
/// - Instead, after every `commitsPerCheckpoint` commits the writer wakes this checkpointer, which
///   runs `wal_checkpoint(PASSIVE)`: it waits for no reader and no writer, so the writer keeps
///   committing meanwhile.
/// - SQLite starts the WAL over from its beginning only when a write begins with every frame
///   already copied. Under steady writes that never happens by itself (frames keep arriving
///   while the checkpointer copies), so once the WAL holds `restartFrames` frames the writer
///   copies the short remainder itself, between two batches and after the earlier batch was
///   answered (`GroupCommitWriter`); its next write then restarts the WAL.
/// - `synchronous = FULL` holds on this connection too: the database file is fsynced before the
///   copied frames count as checkpointed. A crash at any point leaves the WAL to be replayed.
/// - A checkpoint that fails (the disk is full, say) is retried with the next wake-up; the WAL
///   then grows, and nothing acknowledged depends on the checkpoint.
/// - Erasure still truncates the WAL on the writer before it is answered (GroupCommitWriter),
///   with this checkpointer paused (`whilePaused`) so that the two never contend for SQLite's
///   checkpoint lock.
final class WALCheckpointer: Sendable {
    /// Commits between two checkpoints. Each commit appends a few pages (an audit entry and its
    /// index pages), so the WAL stays at a few hundred pages under load.
    static let commitsPerCheckpoint = 64

    /// WAL frames (pages) at which the writer catches up itself so that the WAL restarts:
    /// 1000, SQLite's own automatic-checkpoint size (4 MiB with 4 KiB pages).
    static let restartFrames = 1000

    private let connection: DatabaseQueue
    private let state = Mutex(State())
    private let runs = Atomic<Int>(0)
    /// Frames in the WAL at the end of the last checkpoint (copied or not).
    private let walFrames = Atomic<Int>(0)

    /// Whether the writer should copy the rest of the WAL itself, so that its next write
    /// starts the WAL over.
    var writerShouldCatchUp: Bool { walFrames.load(ordering: .relaxed) >= Self.restartFrames }

    /// The writer ran its own checkpoint. Complete or not, the writer waits for this
    /// checkpointer's next report before it tries again: while a long reader keeps frames in
    /// use, a checkpoint after every batch would copy nothing and only hold the lock.
    func writerCheckpointed() {
        walFrames.store(0, ordering: .relaxed)
    }

    private struct State {
        var commitsSince = 0
        var running = false
        var again = false
        var paused = 0
        var closed = false
    }

    init(path: String, configuration: Configuration) throws {
        connection = try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Checkpoints run so far (tests).
    var checkpointCount: Int { runs.load(ordering: .relaxed) }

    /// Called by the writer after each commit.
    func noteCommit() {
        startIfDue { $0.commitsSince += 1 }
    }

    /// Applies `change` to the state, then starts a run if enough commits are waiting and
    /// nothing holds it back (closed, paused); asks a running one to go again instead.
    private func startIfDue(after change: (inout State) -> Void = { _ in }) {
        let start = state.withLock { state -> Bool in
            change(&state)
            guard !state.closed, state.paused == 0, state.commitsSince >= Self.commitsPerCheckpoint else { return false }
            state.commitsSince = 0
            if state.running {
                state.again = true
                return false
            }
            state.running = true
            return true
        }
        if start { Task.detached { await self.run() } }
    }

    private func run() async {
        while true {
            // PASSIVE: copies what no reader still needs; never blocks the writer or readers.
            // The closed check runs on the connection's serial queue, the same one `close()`
            // goes through, so no checkpoint starts on a closed connection.
            let result = try? await connection.writeWithoutTransaction { db -> Result? in
                guard !self.isClosed else { return nil }
                return try Self.passiveCheckpoint(db)
            }
            if let result = result ?? nil { walFrames.store(result.walFrames, ordering: .relaxed) }
            runs.add(1, ordering: .relaxed)
            let again = state.withLock { state -> Bool in
                if state.again, !state.closed, state.paused == 0 {
                    state.again = false
                    return true
                }
                state.running = false
                return false
            }
            if !again { return }
        }
    }

    private var isClosed: Bool { state.withLock { $0.closed } }

    /// Runs `body` (a checkpoint on the writer's own connection: the erasure's TRUNCATE, the
    /// writer's catch-up) while no checkpoint runs here. SQLite lets one connection checkpoint
    /// at a time and answers any other at once with SQLITE_BUSY, without the busy timeout, so
    /// an erasure's truncation could otherwise fail whenever this checkpointer was copying.
    func whilePaused<T>(_ body: () async throws -> T) async rethrows -> T {
        state.withLock { $0.paused += 1 }
        // Wait for a checkpoint in progress to end. After a burst of bulk writes that can take
        // a while (it copies everything written since the last one): only an erasure waits.
        while state.withLock({ $0.running }) { try? await Task.sleep(for: .milliseconds(1)) }
        return try await runPaused(body)
    }

    /// Runs `body` paused only if no checkpoint is running now; nil otherwise. The writer's
    /// catch-up uses it: it must never wait for a long copy, or every request waits with it
    /// (the first 1M rewrap with a waiting catch-up stalled the light load for a second).
    func ifIdle<T>(_ body: () async throws -> T) async rethrows -> T? {
        let idle = state.withLock { state -> Bool in
            guard !state.running else { return false }
            state.paused += 1
            return true
        }
        guard idle else { return nil }
        return try await runPaused(body)
    }

    /// Runs `body` with `paused` already counted, and lifts the pause afterwards.
    private func runPaused<T>(_ body: () async throws -> T) async rethrows -> T {
        defer { startIfDue { $0.paused -= 1 } }
        return try await body()
    }

    /// What `wal_checkpoint(PASSIVE)` did.
    struct Result {
        /// Another connection held the checkpoint lock, so nothing was copied.
        var busy: Bool
        var walFrames: Int
        var checkpointedFrames: Int
    }

    /// `wal_checkpoint(PASSIVE)` on `db`'s connection.
    static func passiveCheckpoint(_ db: Database) throws -> Result {
        // The row is (busy, frames in the WAL, frames checkpointed); -1s when not in WAL mode.
        let row = try Row.fetchOne(db, sql: "PRAGMA main.wal_checkpoint(PASSIVE)")
        let busy: Int = row?[0] ?? 0
        let log: Int = row?[1] ?? 0
        let done: Int = row?[2] ?? 0
        return Result(busy: busy != 0, walFrames: max(0, log), checkpointedFrames: max(0, done))
    }

    /// Stops further checkpoints and closes the connection (the store closes after it).
    func close() {
        state.withLock { $0.closed = true }
        try? connection.close()
    }
}
