import Foundation
import Metrics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Caps on open connections (DESIGN invariant 9; docs/ROBUSTNESS.md §Resource limits): all peers
/// together, each uid, and all peers with no role together. A connection over a cap is closed
/// as soon as its credentials are read, before any byte of it is parsed; the refusal is counted
/// in `/metrics` and logged at most once per uid per summary interval (RefusalSummaries).
final class ConnectionLimiter: Sendable {
    struct Caps: Sendable, Equatable {
        var total: Int
        var perPeer: Int
        var unknown: Int
    }

    enum Refusal: String, Sendable {
        /// All connections together are at `limits.max_connections` (after the fd budget).
        case total
        /// This uid is at `limits.max_connections_per_peer`.
        case peer
        /// Peers with no role are at `limits.max_unknown_connections`.
        case unknownPeers = "unknown_peers"
    }

    private struct State {
        var caps: Caps
        var total = 0
        var unknown = 0
        var perUID: [UInt32: Int] = [:]
        var peak = 0
    }

    private let state: Mutex<State>

    init(caps: Caps) {
        state = Mutex(State(caps: caps))
        Gauge(label: "anonreg_connections_max").record(caps.total)
        Gauge(label: "anonreg_connections_open").record(0)
    }

    var caps: Caps { state.withLock { $0.caps } }

    /// New caps (a reload). Connections already open stay open; new ones see the new caps.
    func reconfigure(_ caps: Caps) {
        state.withLock { $0.caps = caps }
        Gauge(label: "anonreg_connections_max").record(caps.total)
    }

    /// Counts a new connection of `uid` in, or says which cap refuses it (then nothing is counted).
    func admit(uid: UInt32, known: Bool) -> Refusal? {
        let (refusal, open) = state.withLock { s -> (Refusal?, Int) in
            if s.total >= s.caps.total { return (.total, s.total) }
            if !known, s.unknown >= s.caps.unknown { return (.unknownPeers, s.total) }
            if s.perUID[uid, default: 0] >= s.caps.perPeer { return (.peer, s.total) }
            s.total += 1
            if !known { s.unknown += 1 }
            s.perUID[uid, default: 0] += 1
            s.peak = max(s.peak, s.total)
            return (nil, s.total)
        }
        if let refusal {
            Counter(label: "anonreg_connections_refused_total", dimensions: [("reason", refusal.rawValue)]).increment()
        } else {
            Gauge(label: "anonreg_connections_open").record(open)
        }
        return refusal
    }

    /// Counts a connection that `admit` let in out again, when it closes.
    func release(uid: UInt32, known: Bool) {
        let open = state.withLock { s -> Int in
            s.total -= 1
            if !known { s.unknown -= 1 }
            if let n = s.perUID[uid] { s.perUID[uid] = n > 1 ? n - 1 : nil }
            return s.total
        }
        Gauge(label: "anonreg_connections_open").record(open)
    }

    var openConnections: Int { state.withLock { $0.total } }

    /// The most connections open at once since the last call (then reset to what is open now).
    func takePeak() -> Int {
        state.withLock { s in
            defer { s.peak = s.total }
            return s.peak
        }
    }
}

/// How many connections the file-descriptor limit leaves room for (docs/OPERATIONS.md §Sizing).
enum FileDescriptorBudget {
    /// The soft `RLIMIT_NOFILE`, first raised towards the hard limit when `wanted` needs it
    /// (outside systemd; the unit's system-call filter forbids it and sets `LimitNOFILE=` instead).
    static func softLimit(raisingTo wanted: Int) -> Int? {
        let infinity = rlim_t.max  // RLIM_INFINITY
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur != infinity, Int(limit.rlim_cur) < wanted, limit.rlim_max > limit.rlim_cur {
            var raised = limit
            raised.rlim_cur = limit.rlim_max == infinity ? rlim_t(wanted) : min(limit.rlim_max, rlim_t(wanted))
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur == infinity ? Int(Int32.max) : Int(limit.rlim_cur)
    }

    /// File descriptors the process has open now (`/proc/self/fd`).
    static func openDescriptors() -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).map { max(0, $0.count - 1) }
    }

    /// The connection cap in force: the configured one, lowered so that connections never take
    /// the descriptors already open nor the reserve. Never below 1.
    static func connectionCap(configured: Int, softLimit: Int?, open: Int?, reserve: Int) -> Int {
        guard let softLimit else { return configured }
        return max(1, min(configured, softLimit - (open ?? 0) - reserve))
    }
}
