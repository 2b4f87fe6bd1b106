import ArgumentParser
import Foundation
import Histogram
import RegistryCore
import RegistryProtocol
import Synchronization
import UnixHTTP

/// `make bench`: every operation over the socket at each concurrency, the mixed workload, a
/// paced run at half of each operation's peak, then the in-process limits on the same machine.
struct SocketBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Load over the Unix socket against in-process limits (make bench).")

    @OptionGroup var common: CommonOptions

    @Option(parsing: .upToNextOption, help: "Concurrent keep-alive connections (one phase each).")
    var connections: [Int] = [1, 8, 64]

    @Option(help: "Seconds per measured phase.")
    var seconds: Double = 5

    @Option(
        parsing: .upToNextOption,
        help: "Operations to measure (oprf oprf-batch enrol checkup status due mixed; oprf includes the batch phases).")
    var ops: [String] = BenchOp.allCases.map(\.rawValue) + ["mixed"]

    @Option(
        parsing: .upToNextOption, help: "Batch sizes of the batched OPRF phases (elements per request; none: --oprf-batches with no value)."
    )
    var oprfBatches: [Int] = [1, 10, 100]

    @Option(help: "Cases in the due-list pool (the due list's answer size).")
    var duePool = 100

    @Option(help: "Cases check-ups are spread over.")
    var checkupPool = 2000

    @Option(help: "anonregd log level for the run (the default config's level is info).")
    var logLevel = "info"

    @Flag(inversion: .prefixedNo, help: "Measure the in-process limits after the socket phases.")
    var limits = true

    @Flag(help: "Skip the paced half-peak phases.")
    var noHalfPeak = false

    @OptionGroup var postgres: PostgresBenchOptions

    @Option(help: "Daemons serving one PostgreSQL registry, the connections spread over them (needs --postgres-socket-dir).")
    var nodes = 1

    func run() async throws {
        let loadBefore = Machine.loadAverage()
        let work = try common.makeWorkDir("bench")
        defer { common.cleanUp(work) }
        let binDir = common.resolvedBinDir
        let today = SystemDayClock().today
        print("anonreg-bench run: \(connections) connections, \(seconds) s per phase, load average \(loadBefore), scratch \(work)")
        if let delay = Machine.fsyncDelay {
            print("slow disk simulated: every fsync and fdatasync takes \(delay) µs longer (bench/slow-fsync.c)")
        }
        let elements = try Workload.blindedElements(1000)

        // MARK: Over the socket
        guard nodes >= 1, nodes == 1 || postgres.socketDir != nil else {
            throw ValidationError("--nodes above 1 needs a PostgreSQL registry (--postgres-socket-dir)")
        }
        let daemon = try DaemonProcess(binDir: binDir, stateDir: work + "/socket-state") {
            postgres.configure(benchConfig($0, logLevel: logLevel))
        }
        let startSeconds = try daemon.start()
        print(
            "anonregd started in \(String(format: "%.3f", startSeconds)) s, RSS \(ResultsWriter.mib(daemon.memory().current)), storage \(postgres.describe(nodes: nodes))"
        )
        // More nodes of the same registry: each a state directory of its own with a copy of
        // the first one's keys directory (every node holds the same keyring).
        var others: [DaemonProcess] = []
        for node in 1..<nodes {
            let other = try DaemonProcess(binDir: binDir, stateDir: work + "/socket-state-\(node)") {
                postgres.configure(benchConfig($0, logLevel: logLevel))
            }
            try other.replaceKeys(with: daemon.stateDir + "/keys")
            try other.start()
            others.append(other)
        }
        defer { for other in others { other.stop() } }
        let sockets = [daemon.socket] + others.map(\.socket)
        let workload = try Self.setUpOverSocket(daemon.socket, today: today, duePool: duePool, checkupPool: checkupPool, elements: elements)
        var figures: [Figure] = []
        var socketOps = ops.filter { $0 != "mixed" }.compactMap(BenchOp.init(rawValue:))
        if socketOps.isEmpty && !ops.contains("mixed") && !ops.contains("oprf-batch") { socketOps = BenchOp.allCases }
        for op in socketOps {
            for n in connections {
                let m = try LoadRunner.run(sockets: sockets, connections: n, seconds: seconds) { _ in
                    (op.rawValue, workload.request(op))
                }
                let f = Figure(
                    op: op.rawValue, side: "socket", concurrency: n, histogram: m.total, errors: m.errors.values.reduce(0, +),
                    seconds: m.seconds)
                report(f, m.firstError)
                figures.append(f)
            }
        }
        let batchFigures =
            ops.contains("oprf") || ops.contains("oprf-batch") ? try oprfBatchPhases(socket: daemon.socket, workload: workload) : []
        figures += batchFigures
        var mixedPerOp: [Figure] = []
        if ops.contains("mixed") {
            for n in connections {
                let m = try LoadRunner.run(sockets: sockets, connections: n, seconds: seconds) { _ in workload.mixed() }
                let f = Figure(
                    op: "mixed", side: "socket", concurrency: n, histogram: m.total, errors: m.errors.values.reduce(0, +),
                    seconds: m.seconds,
                    note: BenchOp.mix.map { "\($0.0.rawValue) \($0.1)%" }.joined(separator: ", "))
                report(f, m.firstError)
                figures.append(f)
                for (name, h) in m.histograms.sorted(by: { $0.key < $1.key }) {
                    mixedPerOp.append(
                        Figure(
                            op: name, side: "socket, in mixed", concurrency: n, histogram: h, errors: m.errors[name] ?? 0,
                            seconds: m.seconds))
                }
            }
        }
        // Half of each operation's peak, paced, from 8 connections (or the most measured). The
        // peak is measured again just before (closed loop, at the connection count that peaked
        // earlier): the phases in between add check-ups to the same cases, so a status read
        // costs more by now than when its peak was first measured, and half of the old peak
        // could be more than the daemon can serve at this point.
        var halfPeak: [Figure] = []
        let pacedConnections = connections.contains(8) ? 8 : (connections.max() ?? 1)
        for name in Set(figures.map(\.op)).sorted() where !noHalfPeak && Self.batchSize(of: name) == nil {
            guard let earlier = figures.filter({ $0.op == name && $0.side == "socket" }).max(by: { $0.perSecond < $1.perSecond }),
                earlier.perSecond > 0
            else { continue }
            let request: @Sendable (Int) -> (name: String, request: BenchRequest) = { _ in
                name == "mixed" ? workload.mixed() : (name, workload.request(BenchOp(rawValue: name)!))
            }
            let again = try LoadRunner.run(sockets: sockets, connections: earlier.concurrency, seconds: min(seconds, 3), next: request)
            let peak = again.total.totalCount > 0 ? Double(again.total.totalCount) / again.seconds : earlier.perSecond
            let rate = peak / 2
            let m = try LoadRunner.run(sockets: sockets, connections: pacedConnections, seconds: seconds, rate: rate, next: request)
            let f = Figure(
                op: name, side: "half-peak", concurrency: pacedConnections, histogram: m.total, errors: m.errors.values.reduce(0, +),
                seconds: m.seconds,
                note:
                    "paced at \(ResultsWriter.rate(rate))/s (half of \(ResultsWriter.rate(peak))/s, its peak at \(earlier.concurrency) connections measured again just before; \(ResultsWriter.rate(earlier.perSecond))/s earlier in the run)"
            )
            report(f, m.firstError)
            halfPeak.append(f)
        }
        let memory = daemon.memory()
        let stopStatus = daemon.stop()
        let dbBytes = Self.fileBytes(daemon.databasePath)
        print(
            "anonregd peak RSS (VmHWM) \(ResultsWriter.mib(memory.peak)), exit \(stopStatus); check-ups sent \(workload.checkupsSent) over \(workload.checkupPool.count) cases"
        )

        // MARK: In process, same machine, daemon stopped
        print("in-process limits (daemon stopped):")
        let limits =
            !self.limits
            ? []
            : try await Self.inProcessLimits(
                work: work, binDir: binDir, today: today, seconds: seconds, concurrency: connections,
                duePool: duePool, checkupPool: checkupPool, elements: elements, report: report)

        // MARK: Ratios and targets
        let (ratios, targets) = Self.evaluate(figures: figures, halfPeak: halfPeak, limits: limits)
        let result = SocketBenchReport(
            kind: "bench", storage: postgres.describe(nodes: nodes), machine: Machine.current(loadBefore: loadBefore),
            secondsPerPhase: seconds, connections: connections,
            daemonStartSeconds: startSeconds, daemonPeakRSSBytes: memory.peak, daemonRSSBytesAtEnd: memory.current,
            databaseBytesAtEnd: dbBytes, socket: figures, mixedPerOperation: mixedPerOp, halfPeak: halfPeak, inProcess: limits,
            ratios: ratios, targets: targets, logLevel: logLevel)
        let markdown = Self.markdown(result)
        print("\n" + markdown)
        let path = try ResultsWriter.write(result, markdown: markdown, dir: common.results, kind: postgres.resultKind(nodes: nodes))
        print("results: \(path) and \(path.replacingOccurrences(of: ".json", with: ".md"))")
    }

    func report(_ f: Figure, _ firstError: String?) {
        print(
            "  \(f.side) \(f.op) x\(f.concurrency): \(ResultsWriter.rate(f.perSecond))/s p50 \(ResultsWriter.ms(f.p50ms)) ms p99 \(ResultsWriter.ms(f.p99ms)) ms p99.9 \(ResultsWriter.ms(f.p999ms)) ms (\(f.requests) ok, \(f.errors) errors)\(f.note.map { "; " + $0 } ?? "")"
        )
        if let firstError { print("    first error: \(firstError)") }
        flushOutput()
    }

    static func fileBytes(_ path: String) -> Int {
        ["", "-wal", "-shm"].reduce(0) { sum, suffix in
            sum + (((try? FileManager.default.attributesOfItem(atPath: path + suffix))?[.size] as? NSNumber)?.intValue ?? 0)
        }
    }

    // MARK: - Setting up the pools

    static func setUpOverSocket(_ socket: String, today: Day, duePool: Int, checkupPool: Int, elements: [[UInt8]]) throws -> Workload {
        let due = try enrolOverSocket(socket, count: duePool, enrolledOn: today.adding(days: -30))
        let checkup = try enrolOverSocket(socket, count: checkupPool, enrolledOn: today.adding(days: -Workload.checkupRoom))
        return Workload(today: today, duePool: due, checkupPool: checkup, blindedElements: elements)
    }

    static func enrolOverSocket(_ socket: String, count: Int, enrolledOn: Day) throws -> [String] {
        let handles = Locked<[String]>([])
        let failure = Locked<String?>(nil)
        let threads = 8
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let c = try UnixHTTPConnection.connected(socket)
                    var i = t
                    while i < count {
                        let reply = try c.send("POST", "/v1/subjects", json: Workload.enrolBody(enrolledOn: enrolledOn))
                        guard reply.status == 201 else { throw BenchError.unexpected("enrol: \(reply.status) \(reply.text)") }
                        let answer = try JSONDecoder().decode(EnrolResponse.self, from: Data(reply.body))
                        handles.withLock { $0.append(answer.case) }
                        i += threads
                    }
                } catch { failure.withLock { $0 = "\(error)" } }
            }.start()
        }
        group.wait()
        if let f = failure.withLock({ $0 }) { throw BenchError.unexpected("setting up cases: \(f)") }
        return handles.withLock { $0 }
    }

    // MARK: - In-process limits

    static func inProcessLimits(
        work: String, binDir: String, today: Day, seconds: Double, concurrency: [Int], duePool: Int, checkupPool: Int,
        elements: [[UInt8]], report: (Figure, String?) -> Void
    ) async throws -> [Figure] {
        let state = try DaemonProcess(binDir: binDir, stateDir: work + "/in-process-state") { benchConfig($0, logLevel: "info") }
        let registry = try InProcessRegistry(stateDir: state.stateDir)
        defer { registry.close() }
        var due: [String] = []
        for _ in 0..<duePool { due.append(try await registry.enrol(Workload.enrolBody(enrolledOn: today.adding(days: -30)))) }
        let checkup = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<checkupPool {
                group.addTask { try await registry.enrol(Workload.enrolBody(enrolledOn: today.adding(days: -Workload.checkupRoom))) }
            }
            var all: [String] = []
            for try await h in group { all.append(h) }
            return all
        }
        let workload = Workload(today: today, duePool: due, checkupPool: checkup, blindedElements: elements)
        var figures: [Figure] = []
        func add(_ op: String, _ n: Int, _ m: PhaseMeasurement, note: String? = nil) {
            let f = Figure(
                op: op, side: "in-process", concurrency: n, histogram: m.total, errors: m.errors.values.reduce(0, +), seconds: m.seconds,
                note: note)
            report(f, m.firstError)
            figures.append(f)
        }
        // OPRF: RFC 9497 BlindEvaluate (point check + crypto_scalarmult_ristretto255) on every core.
        let key = registry.keys.current.oprfKey
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let counter = SharedInt()
        add(
            "oprf-scalarmult", cores,
            InProcessRunner.threads(cores, seconds: seconds) {
                let i = counter.next()
                _ = try? key.blindEvaluate(blindedElement: elements[i % elements.count])
            }, note: "BlindEvaluate on \(cores) threads: the raw all-core limit")
        add(
            "oprf-scalarmult", 1,
            InProcessRunner.threads(1, seconds: seconds) {
                let i = counter.next()
                _ = try? key.blindEvaluate(blindedElement: elements[i % elements.count])
            }, note: "one core")
        let enrolBody = Workload.enrolBody(enrolledOn: today)
        let dueBefore = workload.dueBefore
        for n in concurrency {
            add("enrol", n, await InProcessRunner.run(concurrency: n, seconds: seconds) { _ in _ = try await registry.enrol(enrolBody) })
            add(
                "checkup", n,
                await InProcessRunner.run(concurrency: n, seconds: seconds) { _ in
                    let next = workload.nextCheckup()
                    try await registry.checkup(next.handle, Workload.checkupBody(on: next.on))
                }, note: n == 1 ? "naive: one write, one commit (fsync) at a time" : "group commit")
            add(
                "checkup+audit", n,
                await InProcessRunner.run(concurrency: n, seconds: seconds) { _ in
                    let next = workload.nextCheckup()
                    try await registry.checkupAudited(next.handle, Workload.checkupBody(on: next.on))
                }, note: "check-up with its audit entry in the same transaction, as the daemon does")
            add(
                "status", n,
                await InProcessRunner.run(concurrency: n, seconds: seconds) { _ in
                    try await registry.status(workload.statusPool[workload.nextIndex() % workload.statusPool.count])
                })
            add(
                "due", n, await InProcessRunner.run(concurrency: n, seconds: seconds) { _ in _ = try await registry.due(before: dueBefore) }
            )
            add(
                "status+audit", n,
                await InProcessRunner.run(concurrency: n, seconds: seconds) { _ in
                    try await registry.statusAudited(workload.statusPool[workload.nextIndex() % workload.statusPool.count])
                }, note: "status read plus its audit entry, as the daemon does")
            add("audit-append", n, await InProcessRunner.run(concurrency: n, seconds: seconds) { _ in try await registry.auditAppend() })
        }
        return figures
    }

    // MARK: - Evaluation

    static func evaluate(figures: [Figure], halfPeak: [Figure], limits: [Figure]) -> ([Ratio], [TargetResult]) {
        func best(_ list: [Figure], _ op: String) -> Figure? { list.filter { $0.op == op }.max { $0.perSecond < $1.perSecond } }
        func at(_ list: [Figure], _ op: String, _ n: Int) -> Figure? { list.first { $0.op == op && $0.concurrency == n } }
        var ratios: [Ratio] = []
        var targets: [TargetResult] = []
        let maxN = figures.map(\.concurrency).max() ?? 1
        func ratio(_ op: String, _ socket: Figure?, _ limitName: String, _ limit: Figure?) -> Ratio? {
            guard let socket, let limit, limit.perSecond > 0 else { return nil }
            let r = Ratio(
                op: op, socketPerSecond: socket.perSecond, socketConcurrency: socket.concurrency, limit: limitName,
                limitPerSecond: limit.perSecond, ratio: socket.perSecond / limit.perSecond)
            ratios.append(r)
            return r
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        if let r = ratio("oprf", best(figures, "oprf"), "BlindEvaluate on \(cores) threads", at(limits, "oprf-scalarmult", cores)) {
            targets.append(
                TargetResult(
                    target: "OPRF over the socket >= 70% of the raw all-core scalar multiplication",
                    measured: String(format: "%.0f%%", r.ratio * 100), met: r.ratio >= 0.7))
        }
        let (batchRatios, batchTargets) = evaluateOPRFBatches(
            figures.filter { batchSize(of: $0.op) != nil },
            limit: at(limits, "oprf-scalarmult", cores), cores: cores)
        ratios += batchRatios
        targets += batchTargets
        let checkupSocket = at(figures, "checkup", maxN)
        if let r = ratio("checkup", checkupSocket, "naive in-process (1 writer, fsync per write)", at(limits, "checkup", 1)) {
            targets.append(
                TargetResult(
                    target: "check-ups with \(maxN) clients >= 5x the naive in-process rate",
                    measured: String(format: "%.1fx", r.ratio), met: r.ratio >= 5))
        }
        if let r = ratio("checkup", checkupSocket, "batched in-process (\(maxN) writers, group commit)", at(limits, "checkup", maxN)) {
            targets.append(
                TargetResult(
                    target: "check-ups with \(maxN) clients >= 50% of the in-process batched limit",
                    measured: String(format: "%.0f%%", r.ratio * 100), met: r.ratio >= 0.5))
        }
        _ = ratio(
            "checkup", checkupSocket, "in-process check-up + its audit entry, same transaction (\(maxN) writers)",
            at(limits, "checkup+audit", maxN))
        if let r = ratio("status", best(figures, "status"), "in-process status (best concurrency)", best(limits, "status")) {
            targets.append(
                TargetResult(
                    target: "status reads >= 40% of the in-process limit",
                    measured: String(format: "%.0f%%", r.ratio * 100), met: r.ratio >= 0.4))
        }
        _ = ratio("status", best(figures, "status"), "in-process status + audit append (best concurrency)", best(limits, "status+audit"))
        _ = ratio("enrol", best(figures, "enrol"), "in-process enrol (best concurrency)", best(limits, "enrol"))
        _ = ratio("due", best(figures, "due"), "in-process due list (best concurrency)", best(limits, "due"))
        for f in halfPeak {
            targets.append(
                TargetResult(
                    target: "\(f.op): p99 < 5 ms at half of peak throughput",
                    measured: "p99 \(ResultsWriter.ms(f.p99ms)) ms (\(f.note ?? ""))", met: f.p99ms < 5))
        }
        return (ratios, targets)
    }

    static func markdown(_ r: SocketBenchReport) -> String {
        var out = "## anonreg-bench run\n\n"
        out += "Machine: \(r.machine.cpus) CPUs (\(r.machine.cpuModel)), \(r.machine.memTotalMiB) MiB, Linux \(r.machine.kernel); "
        out +=
            "load average before \(r.machine.loadBefore), after \(r.machine.loadAfter). \(r.secondsPerPhase) s per phase; daemon log level \(r.logLevel).\n\n"
        if let delay = r.machine.fsyncDelayMicroseconds {
            out += "**Slow disk simulated:** every fsync and fdatasync took \(delay) µs longer (bench/slow-fsync.c, LD_PRELOAD).\n\n"
        }
        out +=
            "Daemon: start \(String(format: "%.3f", r.daemonStartSeconds)) s, peak RSS (VmHWM) \(ResultsWriter.mib(r.daemonPeakRSSBytes)), "
        out += "database at end \(ResultsWriter.mib(r.databaseBytesAtEnd)).\n\n"
        out += "### Over the socket\n\n" + ResultsWriter.table(r.socket)
        if !r.mixedPerOperation.isEmpty { out += "\n### Mixed workload, per operation\n\n" + ResultsWriter.table(r.mixedPerOperation) }
        out += "\n### Paced at half of peak\n\n" + ResultsWriter.table(r.halfPeak)
        out += "\n### In process (same machine, same run, daemon stopped)\n\n" + ResultsWriter.table(r.inProcess)
        out += "\n### Socket / in-process\n\n| op | socket req/s (conc) | limit | limit req/s | ratio |\n|---|---:|---|---:|---:|\n"
        for x in r.ratios {
            out +=
                "| \(x.op) | \(ResultsWriter.rate(x.socketPerSecond)) (\(x.socketConcurrency)) | \(x.limit) | \(ResultsWriter.rate(x.limitPerSecond)) | \(String(format: "%.2f", x.ratio)) |\n"
        }
        out += "\n### Targets (issue 8; reported, not asserted)\n\n| target | measured | |\n|---|---|---|\n"
        for t in r.targets { out += "| \(t.target) | \(t.measured) | \(t.met ? "met" : "MISSED") |\n" }
        return out
    }
}

struct SocketBenchReport: Codable, Sendable {
    var kind: String
    /// Where the registry was: "sqlite", "postgresql, 1 node", "postgresql, 2 nodes".
    var storage: String? = nil
    var machine: Machine
    var secondsPerPhase: Double
    var connections: [Int]
    var daemonStartSeconds: Double
    var daemonPeakRSSBytes: Int
    var daemonRSSBytesAtEnd: Int
    var databaseBytesAtEnd: Int
    var socket: [Figure]
    var mixedPerOperation: [Figure]
    var halfPeak: [Figure]
    var inProcess: [Figure]
    var ratios: [Ratio]
    var targets: [TargetResult]
    var logLevel: String
}
