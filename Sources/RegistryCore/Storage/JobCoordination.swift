import Foundation

/// The daemon's periodic jobs that one node of a registry runs at a time (docs/STORAGE.md
/// §Single-runner jobs).
public enum RegistryJob: String, Sendable, CaseIterable {
    /// The sweeper: the integrity check, the month fold of unique persons, the reviews and the
    /// summary backfill after them.
    case sweep
    /// Signing the audit chain's head and pruning it.
    case auditCheckpoint = "audit-checkpoint"
}

/// How a backend shared by several daemons lets one of them at a time run a job.
public protocol JobCoordination: Sendable {
    /// Runs `body` and returns its result if `job` is due (no node of the registry finished it
    /// within `interval`; `.zero`: always due) and no other node runs it now; nil otherwise. A
    /// node that dies while it runs a job frees it at once, so another node takes it over at
    /// its next call.
    func runIfDue<T: Sendable>(_ job: RegistryJob, every interval: Duration, _ body: @Sendable () async throws -> T)
        async throws -> T?

    /// When any node of the registry last finished `job`, in seconds since 1970 (nil: never, as
    /// far as this backend knows): what a node that did not run it reports (the sweep gauge).
    func lastFinished(_ job: RegistryJob) async throws -> Double?
}

/// What a backend that serves one daemon only (SQLite) needs: the job's last run, in memory.
/// Concurrent calls within the process both run, as before there were several nodes.
public final class LocalJobSchedule: @unchecked Sendable {
    private let lock = NSLockShim()
    private var finished: [RegistryJob: ContinuousClock.Instant] = [:]
    private var finishedAt: [RegistryJob: Double] = [:]

    public init() {}

    public func runIfDue<T: Sendable>(_ job: RegistryJob, every interval: Duration, _ body: @Sendable () async throws -> T)
        async throws -> T?
    {
        let now = ContinuousClock.now
        let last = lock.locked { finished[job] }
        if let last, interval > .zero, now - last < interval { return nil }
        defer {
            lock.locked {
                finished[job] = ContinuousClock.now
                finishedAt[job] = Double(time(nil))
            }
        }
        return try await body()
    }

    public func lastFinished(_ job: RegistryJob) -> Double? { lock.locked { finishedAt[job] } }
}
