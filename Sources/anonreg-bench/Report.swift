import Foundation
import Histogram
import Synchronization

/// One measured line: an operation at a concurrency, over the socket or in process.
struct Figure: Codable, Sendable {
    var op: String
    var side: String  // "socket", "in-process", "half-peak"
    var concurrency: Int
    var requests: UInt64
    var errors: Int
    var seconds: Double
    var perSecond: Double
    var p50ms: Double
    var p99ms: Double
    var p999ms: Double
    var maxms: Double
    var note: String?

    init(op: String, side: String, concurrency: Int, histogram h: Histogram<UInt64>, errors: Int, seconds: Double, note: String? = nil) {
        self.op = op
        self.side = side
        self.concurrency = concurrency
        requests = h.totalCount
        self.errors = errors
        self.seconds = seconds
        perSecond = seconds > 0 ? Double(h.totalCount) / seconds : 0
        p50ms = h.totalCount > 0 ? Double(h.valueAtPercentile(50)) / 1000 : 0
        p99ms = h.totalCount > 0 ? Double(h.valueAtPercentile(99)) / 1000 : 0
        p999ms = h.totalCount > 0 ? Double(h.valueAtPercentile(99.9)) / 1000 : 0
        maxms = h.totalCount > 0 ? Double(h.max) / 1000 : 0
        self.note = note
    }
}

/// A target from issue 8, with what was measured: reported, never asserted.
struct TargetResult: Codable, Sendable {
    var target: String
    var measured: String
    var met: Bool
}

/// A socket figure next to its in-process limit.
struct Ratio: Codable, Sendable {
    var op: String
    var socketPerSecond: Double
    var socketConcurrency: Int
    var limit: String
    var limitPerSecond: Double
    var ratio: Double
}

struct Machine: Codable, Sendable {
    var cpus: Int
    var cpuModel: String
    var kernel: String
    var memTotalMiB: Int
    var loadBefore: String
    var loadAfter: String
    /// Microseconds the slow-fsync shim adds to every fsync (`make bench-slow-disk`), nil without it.
    var fsyncDelayMicroseconds: Int?

    static func current(loadBefore: String) -> Machine {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        var uts = utsname()
        uname(&uts)
        let kernel = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let memKiB =
            meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal") }
            .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
        return Machine(
            cpus: ProcessInfo.processInfo.activeProcessorCount, cpuModel: model, kernel: kernel,
            memTotalMiB: memKiB / 1024, loadBefore: loadBefore, loadAfter: loadAverage(),
            fsyncDelayMicroseconds: fsyncDelay)
    }

    /// The delay the slow-fsync shim injects, when it is preloaded.
    static var fsyncDelay: Int? {
        let env = ProcessInfo.processInfo.environment
        guard env["LD_PRELOAD"]?.contains("slow-fsync") == true else { return nil }
        return Int(env["ANONREG_BENCH_FSYNC_DELAY_US"] ?? "2000")
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    }
}

enum ResultsWriter {
    static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        return f.string(from: Date())
    }

    /// Writes `<dir>/<stamp>[-kind].json` and `.md`; returns the JSON path.
    static func write<T: Encodable>(_ report: T, markdown: String, dir: String, kind: String) throws -> String {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let base = "\(dir)/\(timestamp())\(kind.isEmpty ? "" : "-" + kind)"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: base + ".json"))
        try markdown.write(toFile: base + ".md", atomically: true, encoding: .utf8)
        return base + ".json"
    }

    static func ms(_ v: Double) -> String {
        v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.1f", v) : String(format: "%.2f", v)
    }
    static func rate(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : String(format: "%.1f", v) }
    static func mib(_ bytes: Int) -> String { String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

    static func table(_ figures: [Figure]) -> String {
        var out =
            "| op | side | conc | req/s | p50 ms | p99 ms | p99.9 ms | requests | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for f in figures {
            out +=
                "| \(f.op) | \(f.side) | \(f.concurrency) | \(rate(f.perSecond)) | \(ms(f.p50ms)) | \(ms(f.p99ms)) | \(ms(f.p999ms)) | \(f.requests) | \(f.errors) |\n"
        }
        return out
    }
}

/// Flushes standard output (progress lines show up at once when piped to a file).
func flushOutput() { fflush(nil) }

/// A Mutex that closures can share (a `Mutex` local cannot be captured by escaping closures).
final class Locked<T: Sendable>: Sendable {
    private let mutex: Mutex<T>
    init(_ value: T) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout sending T) throws -> sending R) rethrows -> sending R { try mutex.withLock(body) }
}

/// A shared counter / flag.
final class SharedInt: Sendable {
    private let atomic = Atomic<Int>(0)
    func next() -> Int { atomic.add(1, ordering: .relaxed).oldValue }
    var value: Int { atomic.load(ordering: .relaxed) }
    func set(_ v: Int) { atomic.store(v, ordering: .relaxed) }
}
