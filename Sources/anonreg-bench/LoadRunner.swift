import Foundation
import Histogram
import Synchronization
import UnixHTTP

/// One request a worker sends: method, target, body, and the statuses that count as success.
struct BenchRequest: Sendable {
    var method: String
    var target: String
    var body: [UInt8]?
    var ok: ClosedRange<Int> = 200...201
}

/// What one phase of load measured: throughput and latency per operation.
struct PhaseMeasurement: Sendable {
    var seconds: Double
    var histograms: [String: Histogram<UInt64>]
    var errors: [String: Int]
    var firstError: String?

    var total: Histogram<UInt64> {
        var all = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        for h in histograms.values { all.add(h) }
        return all
    }
}

/// Latency histograms in microseconds, up to 60 s.
func newHistogram() -> Histogram<UInt64> { Histogram<UInt64>(highestTrackableValue: 60_000_000) }

/// Drives `connections` keep-alive connections, one thread each, for `seconds`. Closed loop
/// (each worker sends its next request when the previous answer arrived) unless `rate` is set:
/// then requests are paced to `rate` per second in total and latency is counted from the time
/// each request was due (no coordinated omission).
enum LoadRunner {
    static func run(
        socket: String, connections: Int, seconds: Double, rate: Double? = nil,
        stop: @escaping @Sendable () -> Bool = { false },
        next: @escaping @Sendable (_ worker: Int) -> (name: String, request: BenchRequest)
    ) throws -> PhaseMeasurement {
        try run(sockets: [socket], connections: connections, seconds: seconds, rate: rate, stop: stop, next: next)
    }

    /// The same over several daemons of one registry (`run --nodes`): worker `i` connects to
    /// `sockets[i % sockets.count]`, so the connections are spread evenly.
    static func run(
        sockets: [String], connections: Int, seconds: Double, rate: Double? = nil,
        stop: @escaping @Sendable () -> Bool = { false },
        next: @escaping @Sendable (_ worker: Int) -> (name: String, request: BenchRequest)
    ) throws -> PhaseMeasurement {
        let results = Locked<[(histograms: [String: Histogram<UInt64>], errors: [String: Int], firstError: String?)]>([])
        let done = DispatchSemaphore(value: 0)
        let ready = DispatchSemaphore(value: 0)
        let go = DispatchSemaphore(value: 0)
        let startBox = Locked<Double>(0)
        for worker in 0..<connections {
            let thread = Thread {
                var histograms: [String: Histogram<UInt64>] = [:]
                var errors: [String: Int] = [:]
                var firstError: String? = nil
                defer {
                    results.withLock { $0.append((histograms, errors, firstError)) }
                    done.signal()
                }
                let connection: UnixHTTPConnection
                do { connection = try UnixHTTPConnection.connected(sockets[worker % sockets.count]) } catch {
                    firstError = "\(error)"
                    errors["connect", default: 0] += 1
                    ready.signal()
                    return
                }
                ready.signal()
                go.wait()
                let start = startBox.withLock { $0 }
                let deadline = start + seconds
                let interval = rate.map { Double(connections) / $0 }
                var k = 0
                // Spread paced workers over one interval so they do not all fire together.
                let offset = interval.map { $0 * Double(worker) / Double(connections) } ?? 0
                while true {
                    var due = Clock.now()
                    if let interval {
                        due = start + offset + Double(k) * interval
                        k += 1
                        let wait = due - Clock.now()
                        if wait > 0 { usleep(useconds_t(wait * 1e6)) }
                    }
                    if Clock.now() >= deadline || due >= deadline || stop() { break }
                    let (name, request) = next(worker)
                    let sent = interval == nil ? Clock.now() : due
                    do {
                        let reply = try connection.send(request.method, request.target, body: request.body)
                        let micros = UInt64(max(1, (Clock.now() - sent) * 1e6))
                        if request.ok.contains(reply.status) {
                            _ = histograms[name, default: newHistogram()].record(micros)
                        } else {
                            errors[name, default: 0] += 1
                            if firstError == nil { firstError = "\(name): \(reply.status) \(reply.text.prefix(300))" }
                        }
                    } catch {
                        errors[name, default: 0] += 1
                        if firstError == nil { firstError = "\(name): \(error)" }
                        return
                    }
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        for _ in 0..<connections { ready.wait() }
        let started = Clock.now()
        startBox.withLock { $0 = started }
        for _ in 0..<connections { go.signal() }
        for _ in 0..<connections { done.wait() }
        let elapsed = min(Clock.now() - started, seconds + 60)
        var histograms: [String: Histogram<UInt64>] = [:]
        var errors: [String: Int] = [:]
        var firstError: String? = nil
        for r in results.withLock({ $0 }) {
            for (name, h) in r.histograms { histograms[name, default: newHistogram()].add(h) }
            for (name, n) in r.errors { errors[name, default: 0] += n }
            firstError = firstError ?? r.firstError
        }
        return PhaseMeasurement(seconds: elapsed, histograms: histograms, errors: errors, firstError: firstError)
    }
}

/// In-process counterparts: `concurrency` Swift tasks calling the store or the domain directly
/// for `seconds`, closed loop.
enum InProcessRunner {
    static func run(
        concurrency: Int, seconds: Double,
        _ body: @escaping @Sendable (_ worker: Int) async throws -> Void
    ) async -> PhaseMeasurement {
        let started = Clock.now()
        let deadline = started + seconds
        let results = await withTaskGroup(of: (Histogram<UInt64>, Int, String?).self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    var h = newHistogram()
                    var errors = 0
                    var firstError: String? = nil
                    while Clock.now() < deadline {
                        let t0 = Clock.now()
                        do {
                            try await body(worker)
                            _ = h.record(UInt64(max(1, (Clock.now() - t0) * 1e6)))
                        } catch {
                            errors += 1
                            if firstError == nil { firstError = "\(error)" }
                            if errors > 1000 { break }
                        }
                    }
                    return (h, errors, firstError)
                }
            }
            var all: [(Histogram<UInt64>, Int, String?)] = []
            for await r in group { all.append(r) }
            return all
        }
        var h = newHistogram()
        var errors = 0
        var firstError: String? = nil
        for r in results {
            h.add(r.0)
            errors += r.1
            firstError = firstError ?? r.2
        }
        return PhaseMeasurement(
            seconds: Clock.now() - started, histograms: ["op": h], errors: errors == 0 ? [:] : ["op": errors], firstError: firstError)
    }

    /// Plain threads for CPU-bound work that needs no async (the raw OPRF scalar multiplication).
    static func threads(_ count: Int, seconds: Double, _ body: @escaping @Sendable () -> Void) -> PhaseMeasurement {
        let results = Locked<[Histogram<UInt64>]>([])
        let done = DispatchSemaphore(value: 0)
        let started = Clock.now()
        for _ in 0..<count {
            let thread = Thread {
                var h = newHistogram()
                while Clock.now() - started < seconds {
                    let t0 = Clock.nanoseconds()
                    body()
                    _ = h.record(max(1, (Clock.nanoseconds() - t0) / 1000))
                }
                results.withLock { $0.append(h) }
                done.signal()
            }
            thread.start()
        }
        for _ in 0..<count { done.wait() }
        var h = newHistogram()
        for r in results.withLock({ $0 }) { h.add(r) }
        return PhaseMeasurement(seconds: Clock.now() - started, histograms: ["op": h], errors: [:], firstError: nil)
    }
}
