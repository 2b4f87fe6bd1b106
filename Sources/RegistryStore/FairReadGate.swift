import RegistryCore
import Synchronization

/// The read path's share of fairness (docs/ROBUSTNESS.md §Resource limits): at most `permits`
/// reads run at once (no more than the pool has reader connections, so none blocks a thread in
/// the pool), and reads waiting for a permit are served one lane after another (`FairQueue`),
/// not in arrival order. A clinic with one read waiting gets the next free connection whatever
/// another clinic has queued.
final class FairReadGate: Sendable {
    private struct State {
        var free: Int
        var waiters = FairQueue<CheckedContinuation<Void, Never>>()
    }

    private let state: Mutex<State>
    /// Reads that may run at once.
    let permits: Int

    init(permits: Int) {
        self.permits = max(1, permits)
        state = Mutex(State(free: self.permits))
    }

    func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        await acquire(lane: RequestLane.current ?? RequestLane.system)
        defer { release() }
        return try await body()
    }

    private func acquire(lane: String) async {
        let granted = state.withLock { s -> Bool in
            guard s.free > 0, s.waiters.isEmpty else { return false }
            s.free -= 1
            return true
        }
        if granted { return }
        await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool in
                // A permit may have come free in between.
                if s.free > 0, s.waiters.isEmpty {
                    s.free -= 1
                    return true
                }
                s.waiters.append(continuation, lane: lane)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let next = s.waiters.take(1).first { return next }
            s.free += 1
            return nil
        }
        next?.resume()
    }

    /// Reads waiting for a permit (tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Permits not taken (tests).
    var free: Int { state.withLock { $0.free } }
}
