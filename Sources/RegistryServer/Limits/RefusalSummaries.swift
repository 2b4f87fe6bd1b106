import Foundation
import Synchronization

/// Bounds what repeated refusals cost in the audit log and the access log (docs/ROBUSTNESS.md
/// §Resource limits), without hiding them.
///
/// Refusals are grouped by a key: (actor, action, result) for the audit log, (uid, route,
/// status) for the access log. The first refusal of a key is written at once, as before, and
/// opens a window of `interval` seconds. Further refusals of that key inside the window are only
/// counted. When the window ends, one summary is written (the count, the first and the last
/// time) if anything was counted, and the key is forgotten, so the next refusal is again
/// written at once. A flood therefore costs at most two entries per key per interval, and a
/// lone probe is still written the moment it happens.
final class RefusalSummaries<Key: Hashable & Sendable>: Sendable {
    struct Window: Sendable {
        var opened: Double
        /// Refusals after the first one, not yet written.
        var count = 0
        var firstCounted: Date?
        var lastCounted: Date?
    }

    /// A summary that is due: `count` refusals of `key` between `first` and `last`.
    struct Summary: Sendable {
        var key: Key
        var count: Int
        var first: Date
        var last: Date
    }

    let interval: Double
    private let windows = Mutex<[Key: Window]>([:])
    private let now: @Sendable () -> Double
    private let wallClock: @Sendable () -> Date

    init(
        interval: Double, now: @escaping @Sendable () -> Double = { ProcessInfo.processInfo.systemUptime },
        wallClock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.interval = interval
        self.now = now
        self.wallClock = wallClock
    }

    /// Records one refusal of `key`: true when it is to be written now (the first of a window).
    func note(_ key: Key) -> Bool {
        let t = now()
        let date = wallClock()
        return windows.withLock { windows in
            if var window = windows[key], t - window.opened < interval {
                window.count += 1
                if window.firstCounted == nil { window.firstCounted = date }
                window.lastCounted = date
                windows[key] = window
                return false
            }
            // A window that ended with refusals counted waits for `due()`; a new one starts here
            // only once it was summarised. Until then, this refusal is counted in the old one.
            if let window = windows[key], window.count > 0 {
                var extended = window
                extended.count += 1
                extended.lastCounted = date
                windows[key] = extended
                return false
            }
            windows[key] = Window(opened: t)
            return true
        }
    }

    /// The summaries of every window that has ended with refusals counted; those windows and the
    /// quiet ones that ended are forgotten.
    func due(flushAll: Bool = false) -> [Summary] {
        let t = now()
        return windows.withLock { windows in
            var out: [Summary] = []
            for (key, window) in windows where flushAll || t - window.opened >= interval {
                if window.count > 0, let first = window.firstCounted, let last = window.lastCounted {
                    out.append(Summary(key: key, count: window.count, first: first, last: last))
                }
                windows[key] = nil
            }
            return out
        }
    }

    /// Keys with an open window (tests, metrics).
    var openWindows: Int { windows.withLock { $0.count } }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}

/// The key of the audit log's summaries: who, which route, which result.
struct AuditRefusalKey: Hashable, Sendable {
    var actor: String
    var action: String
    var result: String
}

/// The key of the access log's summaries: which uid, route and status.
struct LogRefusalKey: Hashable, Sendable {
    var uid: UInt32
    var route: String
    var status: Int
}
