import ArgumentParser
import Foundation
import Histogram
import RegistryCore
import RegistryProtocol
import UnixHTTP

/// `make bench`, fairness mode (issue 23 §3; docs/PERFORMANCE.md §Fairness): clinic north, on
/// a uid of its own, floods the daemon from 256 keep-alive connections while clinic local
/// (south, this process's uid) reads the status of its own cases from one connection. Two
/// phases in the same run, each with a daemon of its own on a fresh registry:
///
/// - baseline: north floods `GET /v1/health`, which touches no data: the cost of 256 busy
///   connections alone, which no scheduler can remove on this machine;
/// - flood: north enrols flat out (writes), under its default `[limits]` budget.
///
/// The figure is south's p99 under the write flood divided by its p99 beside the health flood.
/// Target: at most 3. The flood runs in a child process (`anonreg-bench flood`) started as
/// north's uid with setpriv, so the daemon sees a separate peer; it needs root.
struct FairnessBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fairness", abstract: "One clinic floods, another reads: its p99 against the health-flood baseline (make bench).")

    @OptionGroup var common: CommonOptions

    @Option(help: "North's connections.")
    var floodConnections = 256

    @Option(help: "Seconds south is measured in each phase.")
    var seconds: Double = 10

    @Option(help: "North's uid (a clinic of its own in the bench's config).")
    var northUID: UInt32 = 61290

    @Option(help: "South's cases (status reads are spread over them).")
    var cases = 200

    func run() async throws {
        guard getuid() == 0 else {
            print("anonreg-bench fairness: needs root (the flood runs as another uid through setpriv); skipped")
            return
        }
        let loadBefore = Machine.loadAverage()
        let work = try common.makeWorkDir("fairness")
        defer { common.cleanUp(work) }
        print(
            "anonreg-bench fairness: north \(floodConnections) connections (uid \(northUID)), south 1 connection, \(seconds) s per phase, load \(loadBefore)"
        )
        var phases: [FairnessPhase] = []
        for flood in ["health", "enrol"] {
            phases.append(try phase(flood: flood, work: work))
        }
        let baseline = phases[0].south.p99ms
        let ratio = baseline > 0 ? phases[1].south.p99ms / baseline : 0
        let p50Ratio = phases[0].south.p50ms > 0 ? phases[1].south.p50ms / phases[0].south.p50ms : 0
        let result = FairnessReport(
            kind: "fairness", machine: Machine.current(loadBefore: loadBefore), floodConnections: floodConnections,
            secondsPerPhase: seconds, phases: phases, p99Ratio: ratio, p50Ratio: p50Ratio, target: 3, met: ratio <= 3)
        let markdown = Self.markdown(result)
        print("\n" + markdown)
        let path = try ResultsWriter.write(result, markdown: markdown, dir: common.results, kind: "fairness")
        print("results: \(path) and \(path.replacingOccurrences(of: ".json", with: ".md"))")
    }

    func phase(flood: String, work: String) throws -> FairnessPhase {
        let northUID = self.northUID
        let daemon = try DaemonProcess(binDir: common.resolvedBinDir, stateDir: work + "/\(flood)-state") { text in
            // Lift the OPRF limit and the log level like every bench; north and local keep the
            // default budgets; north may open all its connections.
            benchConfig(text, logLevel: "warning", liftBudgets: false)
                .replacingOccurrences(of: "max_connections_per_peer = 64", with: "max_connections_per_peer = \(floodConnections)")
                .replacingOccurrences(of: "[rate_limits]", with: "[clinics.north]\nuids = [\(northUID)]\ngids = []\n\n[rate_limits]")
        }
        try daemon.start()
        defer { _ = daemon.stop() }
        let today = SystemDayClock().today
        let handles = try SocketBench.enrolOverSocket(daemon.socket, count: cases, enrolledOn: today.adding(days: -5))
        let floodSeconds = seconds + 4
        let output = work + "/\(flood)-flood.json"
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let child = try DaemonProcess.spawn(
            "/usr/bin/setpriv",
            [
                "--reuid=\(northUID)", "--regid=0", "--clear-groups", me, "flood", "--socket", daemon.socket,
                "--connections", String(floodConnections), "--seconds", String(floodSeconds), "--op", flood,
            ], environment: ProcessInfo.processInfo.environment, output: output)
        // Let north's connections open and its load settle before south is measured.
        usleep(2_500_000)
        let counter = SharedInt()
        let south = try LoadRunner.run(socket: daemon.socket, connections: 1, seconds: seconds) { _ in
            ("status", BenchRequest(method: "GET", target: "/v1/cases/" + handles[counter.next() % handles.count]))
        }
        var status: Int32 = 0
        waitpid(child, &status, 0)
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let northResult = text.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(FloodResult.self, from: Data($0.utf8)) }
        let figure = Figure(
            op: "status (south)", side: "beside north's \(flood) flood", concurrency: 1, histogram: south.total,
            errors: south.errors.values.reduce(0, +), seconds: south.seconds)
        print(
            "  \(flood) flood: south p50 \(ResultsWriter.ms(figure.p50ms)) ms p99 \(ResultsWriter.ms(figure.p99ms)) ms (\(figure.requests) reads, \(figure.errors) errors); north \(northResult.map { $0.summary } ?? "no result: \(text.suffix(300))")"
        )
        if let first = south.firstError { print("    first error: \(first)") }
        flushOutput()
        let db = SocketBench.fileBytes(daemon.databasePath)
        let wal = SocketBench.fileBytes(daemon.databasePath + "-wal")
        return FairnessPhase(flood: flood, south: figure, north: northResult, databaseBytes: db, walBytes: wal)
    }

    static func markdown(_ r: FairnessReport) -> String {
        let m = r.machine
        var out =
            "# anonreg-bench fairness \(ResultsWriter.timestamp())\n\n\(m.cpus) × \(m.cpuModel), \(m.memTotalMiB) MiB, Linux \(m.kernel); load before \(m.loadBefore), after \(m.loadAfter)\n\n"
        out +=
            "North floods from \(r.floodConnections) connections on its own uid; south reads its cases' status from one connection, \(r.secondsPerPhase) s per phase.\n\n"
        out +=
            "| phase | south reads/s | south p50 ms | south p99 ms | north answered/s | north 2xx/s | north 429/s | database + WAL at end |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for p in r.phases {
            let n = p.north
            out +=
                "| north floods \(p.flood) | \(ResultsWriter.rate(p.south.perSecond)) | \(ResultsWriter.ms(p.south.p50ms)) | \(ResultsWriter.ms(p.south.p99ms)) | "
                + "\(n.map { ResultsWriter.rate(Double($0.answered) / $0.seconds) } ?? "?") | \(n.map { ResultsWriter.rate(Double($0.ok) / $0.seconds) } ?? "?") | "
                + "\(n.map { ResultsWriter.rate(Double($0.statuses["429"] ?? 0) / $0.seconds) } ?? "?") | \(ResultsWriter.mib(p.databaseBytes)) (WAL \(ResultsWriter.mib(p.walBytes))) |\n"
        }
        out +=
            "\nSouth's p99 beside north's write flood / beside north's health flood (same run): **\(String(format: "%.2f", r.p99Ratio))×** "
            + "(p50: \(String(format: "%.2f", r.p50Ratio))×). Target ≤ \(Int(r.target))×: \(r.met ? "met" : "missed").\n"
        return out
    }
}

struct FairnessPhase: Codable, Sendable {
    var flood: String
    var south: Figure
    var north: FloodResult?
    var databaseBytes: Int
    var walBytes: Int
}

struct FairnessReport: Codable, Sendable {
    var kind: String
    var machine: Machine
    var floodConnections: Int
    var secondsPerPhase: Double
    var phases: [FairnessPhase]
    var p99Ratio: Double
    var p50Ratio: Double
    var target: Double
    var met: Bool
}

struct FloodResult: Codable, Sendable {
    var seconds: Double
    var answered: Int
    var ok: Int
    var statuses: [String: Int]
    var connectErrors: Int

    var summary: String {
        "\(answered) answers in \(String(format: "%.1f", seconds)) s (\(statuses.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))), \(connectErrors) connections refused"
    }
}

/// The flood of the fairness mode, run as north's uid: `connections` keep-alive connections
/// each sending `op` (health or enrol) as fast as they are answered, for `seconds`. Prints one
/// JSON line (FloodResult).
struct FloodCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flood", abstract: "The fairness mode's flood (run as another uid).", shouldDisplay: false)

    @Option var socket: String
    @Option var connections: Int
    @Option var seconds: Double
    @Option var op: String

    func run() throws {
        let statuses = Locked<[String: Int]>([:])
        let connectErrors = SharedInt()
        let deadline = Clock.now() + seconds
        let started = Clock.now()
        let body = Array(Workload.enrolBody(enrolledOn: SystemDayClock().today).utf8)
        let (method, target) = op == "enrol" ? ("POST", "/v1/subjects") : ("GET", "/v1/health")
        let socket = self.socket
        let group = DispatchGroup()
        for _ in 0..<connections {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                var local: [String: Int] = [:]
                defer { statuses.withLock { all in for (k, v) in local { all[k, default: 0] += v } } }
                guard let connection = try? UnixHTTPConnection.connected(socket) else {
                    _ = connectErrors.next()
                    return
                }
                while Clock.now() < deadline {
                    guard let reply = try? connection.send(method, target, body: method == "POST" ? body : nil) else {
                        _ = connectErrors.next()
                        return
                    }
                    local[String(reply.status), default: 0] += 1
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        let all = statuses.withLock { $0 }
        let result = FloodResult(
            seconds: Clock.now() - started, answered: all.values.reduce(0, +),
            ok: all.filter { $0.key.hasPrefix("2") }.values.reduce(0, +), statuses: all, connectErrors: connectErrors.next())
        print(String(decoding: try JSONEncoder().encode(result), as: UTF8.self))
    }
}
