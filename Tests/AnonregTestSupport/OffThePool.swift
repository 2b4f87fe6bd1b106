import Foundation

/// Runs blocking work (child processes such as initdb and pg_ctl, a writer killed after a
/// delay, a sleep) on a thread of its own, and waits for it without holding a thread of Swift's
/// cooperative pool.
///
/// The pool has one thread per core (two on the CI machine) and does not grow when they block.
/// Every test runs in one process, so a test blocking there for seconds stalls the async work of
/// every other test: the timers of an in-process store's queue (30 s) and pool lease (5 s) then
/// fire on writes that were never given a chance to run, and a test's own `Task.sleep` resumes
/// many seconds late. Call this from async tests for anything that can block for long.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

extension ThrowawayPostgres {
    /// `init(settings)` (initdb, then the server's start), off the cooperative pool.
    public static func started(_ settings: Settings = Settings()) async throws -> ThrowawayPostgres {
        try await offThePool { try ThrowawayPostgres(settings) }
    }
}
