import ArgumentParser
import Foundation
import Histogram
import RegistryCore
import RegistryProtocol
import Synchronization
import UnixHTTP

/// `make bench-scale` (minutes; not in CI): fill N subjects with 3 check-ups each in process,
/// then start the daemon on it and measure start time, RSS, status and due-list latency,
/// database bytes per subject, and an online rotate + rewrap of every DEK under light load.
struct ScaleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale", abstract: "1,000,000 subjects: start, RSS, reads, bytes per subject, online rewrap (make bench-scale).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Subjects to fill (each gets 3 check-ups).")
    var subjects = 1_000_000

    @Option(help: "Concurrent fill tasks (group commit batches their writes).")
    var writers = 256

    @Option(help: "One subject in this many belongs to clinic `local` (the bench's own clinic); the rest to 99 others.")
    var clinics = 100

    @Option(help: "Seconds per read phase.")
    var seconds: Double = 5

    @Option(help: "Requests per second of the light load during the rewrap (status 80%, check-up 20%).")
    var lightRate: Double = 50

    @Option(help: "DEKs per rewrap request (the CLI's default is 1000).")
    var batchSize = 1000

    @Option(
        help:
            "How to fill: `bulk` (one store enrolment per subject carrying its 3 check-up records, sealed from templates the domain wrote) or `domain` (MonitoringService: enrol, then 3 check-ups; 4 transactions per subject)."
    )
    var fill = "bulk"

    func run() async throws {
        let loadBefore = Machine.loadAverage()
        let work = try common.makeWorkDir("bench-scale")
        defer { common.cleanUp(work) }
        print("anonreg-bench scale: \(subjects) subjects x 3 check-ups, load average \(loadBefore), scratch \(work)")
        let daemon = try DaemonProcess(binDir: common.resolvedBinDir, stateDir: work + "/state") { benchConfig($0, logLevel: "info") }
        let today = SystemDayClock().today

        // MARK: Fill in process
        let (local, fillSeconds) =
            fill == "domain"
            ? try await fillThroughDomain(stateDir: daemon.stateDir, today: today)
            : try await fillBulk(stateDir: daemon.stateDir, today: today)
        let dbBytes = SocketBench.fileBytes(daemon.databasePath)
        print("database: \(ResultsWriter.mib(dbBytes)), \(dbBytes / max(1, subjects)) bytes per subject")

        // MARK: Daemon at scale
        let startSeconds = try daemon.start()
        let afterStart = daemon.memory()
        print(
            "anonregd start \(String(format: "%.3f", startSeconds)) s, RSS after start \(ResultsWriter.mib(afterStart.current)) (peak \(ResultsWriter.mib(afterStart.peak)))"
        )
        var figures: [Figure] = []
        let counter = SharedInt()
        let dueBefore = today.adding(days: 7)
        for n in [1, 8] {
            let m = try LoadRunner.run(socket: daemon.socket, connections: n, seconds: seconds) { _ in
                ("status", BenchRequest(method: "GET", target: "/v1/cases/\(local[counter.next() % local.count])"))
            }
            figures.append(
                report(
                    Figure(
                        op: "status", side: "socket", concurrency: n, histogram: m.total, errors: m.errors.values.reduce(0, +),
                        seconds: m.seconds), m.firstError))
        }
        let dueProbe = try UnixHTTPConnection.connected(daemon.socket).send("GET", "/v1/due?before=\(dueBefore)")
        let dueCount = (try? JSONDecoder().decode(DueResponse.self, from: Data(dueProbe.body)))?.cases.count ?? -1
        for n in [1, 8] {
            let m = try LoadRunner.run(socket: daemon.socket, connections: n, seconds: seconds) { _ in
                ("due", BenchRequest(method: "GET", target: "/v1/due?before=\(dueBefore)"))
            }
            figures.append(
                report(
                    Figure(
                        op: "due", side: "socket", concurrency: n, histogram: m.total, errors: m.errors.values.reduce(0, +),
                        seconds: m.seconds,
                        note: "\(dueCount) cases due in the answer (clinic local holds \(local.count))"), m.firstError))
        }

        // MARK: Online rewrap under light load
        let checkupBody = Array(Workload.checkupBody(on: today).utf8)
        let light: @Sendable (Int) -> (name: String, request: BenchRequest) = { _ in
            let i = counter.next()
            if i % 5 == 0 {
                return (
                    "checkup", BenchRequest(method: "POST", target: "/v1/cases/\(local[(i / 5) % local.count])/checkups", body: checkupBody)
                )
            }
            return ("status", BenchRequest(method: "GET", target: "/v1/cases/\(local[i % local.count])"))
        }
        let baseline = try LoadRunner.run(socket: daemon.socket, connections: 2, seconds: seconds, rate: lightRate, next: light)
        figures.append(
            report(
                Figure(
                    op: "light load", side: "before rewrap", concurrency: 2, histogram: baseline.total,
                    errors: baseline.errors.values.reduce(0, +), seconds: baseline.seconds, note: "paced \(lightRate)/s"),
                baseline.firstError))
        let stopLight = SharedInt()
        let lightResult = Locked<PhaseMeasurement?>(nil)
        let lightDone = DispatchSemaphore(value: 0)
        let socket = daemon.socket
        let rate = lightRate
        Thread {
            let m = try? LoadRunner.run(
                socket: socket, connections: 2, seconds: 3600, rate: rate, stop: { stopLight.value != 0 }, next: light)
            lightResult.withLock { $0 = m }
            lightDone.signal()
        }.start()
        usleep(500_000)
        // Each rewrap batch re-seals `batchSize` DEKs in one request under the light load: give
        // the admin calls an hour per read, so a slow batch is measured rather than aborted.
        let admin = try UnixHTTPConnection.connected(daemon.socket, timeout: Self.adminTimeoutSeconds)
        let rewrapStart = Clock.now()
        let rotate = try admin.send("POST", "/v1/admin/keys/rotate")
        guard rotate.status == 201 else { throw BenchError.unexpected("rotate: \(rotate.status) \(rotate.text)") }
        var batches = newHistogram()
        var rewrapped = 0
        while true {
            let t0 = Clock.now()
            let reply = try admin.send("POST", "/v1/admin/keys/rewrap", json: "{\"batchSize\":\(batchSize)}")
            guard reply.status == 200, let answer = try? JSONDecoder().decode(RewrapResponse.self, from: Data(reply.body)) else {
                throw BenchError.unexpected("rewrap: \(reply.status) \(reply.text)")
            }
            _ = batches.record(UInt64(max(1, (Clock.now() - t0) * 1e6)))
            rewrapped += answer.rewrapped
            if answer.remaining == 0 || answer.rewrapped == 0 { break }
        }
        let rewrapSeconds = Clock.now() - rewrapStart
        stopLight.set(1)
        lightDone.wait()
        let during = lightResult.withLock { $0 }
        print(
            "rotate + rewrap of \(rewrapped) DEKs: \(String(format: "%.1f", rewrapSeconds)) s (\(Int(Double(rewrapped) / rewrapSeconds))/s); "
                + "batch of \(batchSize): p50 \(ResultsWriter.ms(Double(batches.valueAtPercentile(50)) / 1000)) ms, max \(ResultsWriter.ms(Double(batches.max) / 1000)) ms"
        )
        if let during {
            figures.append(
                report(
                    Figure(
                        op: "light load", side: "during rewrap", concurrency: 2, histogram: during.total,
                        errors: during.errors.values.reduce(0, +), seconds: during.seconds, note: "paced \(lightRate)/s"), during.firstError
                ))
        }
        figures.append(
            Figure(
                op: "rewrap batch", side: "admin route", concurrency: 1, histogram: batches, errors: 0, seconds: rewrapSeconds,
                note: "\(batchSize) DEKs per request"))
        let end = daemon.memory()
        let status = daemon.stop()
        print("anonregd peak RSS (VmHWM) over the run \(ResultsWriter.mib(end.peak)), exit \(status)")

        let duringP99 = during.map { Double($0.total.valueAtPercentile(99)) / 1000 } ?? -1
        let targets = [
            TargetResult(
                target: "start < 1 s at \(subjects) subjects", measured: String(format: "%.3f s", startSeconds), met: startSeconds < 1),
            TargetResult(
                target: "daemon RSS < 150 MiB at \(subjects) subjects (after start)", measured: ResultsWriter.mib(afterStart.current),
                met: afterStart.current < 150 << 20),
            TargetResult(
                target: "daemon peak RSS < 150 MiB over the whole run (reads, rewrap)", measured: ResultsWriter.mib(end.peak),
                met: end.peak < 150 << 20),
            TargetResult(
                target: "online rewrap of \(rewrapped) DEKs < 60 s", measured: String(format: "%.1f s", rewrapSeconds),
                met: rewrapSeconds < 60),
            TargetResult(
                target: "light load p99 < 5 ms during the rewrap", measured: String(format: "%.2f ms", duringP99),
                met: duringP99 >= 0 && duringP99 < 5),
        ]
        let result = ScaleBenchReport(
            kind: "bench-scale", machine: Machine.current(loadBefore: loadBefore), subjects: subjects, checkupsPerSubject: 3,
            fill: fill, fillSeconds: fillSeconds, databaseBytes: dbBytes,
            databaseBytesPerSubject: Double(dbBytes) / Double(max(1, subjects)),
            daemonStartSeconds: startSeconds, daemonRSSBytesAfterStart: afterStart.current, daemonPeakRSSBytes: end.peak,
            rewrapSeconds: rewrapSeconds, rewrapped: rewrapped, rewrapBatchSize: batchSize, lightLoadPerSecond: lightRate,
            figures: figures, targets: targets)
        var md =
            "## anonreg-bench scale\n\nMachine: \(result.machine.cpus) CPUs (\(result.machine.cpuModel)), \(result.machine.memTotalMiB) MiB; "
        md += "load average before \(loadBefore), after \(result.machine.loadAfter).\n\n"
        md += "| measure | value |\n|---|---:|\n"
        md +=
            "| subjects (3 check-ups each), fill time in process (\(fill)) | \(subjects), \(String(format: "%.0f", result.fillSeconds)) s |\n"
        md += "| database bytes per subject | \(Int(result.databaseBytesPerSubject)) (\(ResultsWriter.mib(dbBytes)) in all) |\n"
        md += "| daemon start (spawn to first 200) | \(String(format: "%.3f", startSeconds)) s |\n"
        md += "| daemon RSS after start / peak over the run | \(ResultsWriter.mib(afterStart.current)) / \(ResultsWriter.mib(end.peak)) |\n"
        md += "| rotate + online rewrap of \(rewrapped) DEKs (batches of \(batchSize)) | \(String(format: "%.1f", rewrapSeconds)) s |\n\n"
        md += ResultsWriter.table(figures)
        md += "\n| target | measured | |\n|---|---|---|\n"
        for t in targets { md += "| \(t.target) | \(t.measured) | \(t.met ? "met" : "MISSED") |\n" }
        print("\n" + md)
        let path = try ResultsWriter.write(result, markdown: md, dir: common.results, kind: "scale-\(subjects)")
        print("results: \(path)")
    }

    /// The admin connection's read and write timeout (rotate, rewrap); the request path keeps
    /// UnixHTTPConnection's 60 s.
    static let adminTimeoutSeconds = 3600

    func report(_ f: Figure, _ firstError: String?) -> Figure {
        print(
            "  \(f.side) \(f.op) x\(f.concurrency): \(ResultsWriter.rate(f.perSecond))/s p50 \(ResultsWriter.ms(f.p50ms)) ms p99 \(ResultsWriter.ms(f.p99ms)) ms p99.9 \(ResultsWriter.ms(f.p999ms)) ms max \(ResultsWriter.ms(f.maxms)) ms (\(f.requests) ok, \(f.errors) errors)\(f.note.map { "; " + $0 } ?? "")"
        )
        if let firstError { print("    first error: \(firstError)") }
        flushOutput()
        return f
    }

    /// Enrols `subjects` subjects through the domain with three check-ups each, `writers` at a
    /// time. Subject i's last check-up is 1 to 90 days ago, so next-due dates spread over the
    /// coming 90 days. Returns the case handles of clinic `local`.
    func fillThroughDomain(stateDir: String, today: Day) async throws -> ([String], Double) {
        let registry = try InProcessRegistry(stateDir: stateDir)
        let local = Locked<[String]>([])
        let done = SharedInt()
        let started = Clock.now()
        let total = subjects
        let every = clinics
        let progress = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(15))
                let n = done.value
                print("  filled \(n) / \(total) (\(Int(Double(n) / (Clock.now() - started)))/s)")
                flushOutput()
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    var i = w
                    while i < total {
                        let clinic = i % every == 0 ? registry.clinic : ClinicID("clinic-\(i % every)")!
                        let last = today.adding(days: -1 - (i / every + i) % 90)
                        let enrolled = last.adding(days: -150)
                        let request = try InProcessRegistry.decoder.decode(
                            EnrolRequest.self, from: Data(Workload.enrolBody(enrolledOn: enrolled).utf8))
                        let handle = try await registry.monitoring.enrol(clinic: clinic, request).case
                        for (k, day) in [last.adding(days: -120), last.adding(days: -60), last].enumerated() {
                            let outcome = k == 1 && i % 5 == 0 ? "relapse" : "remission"
                            let body =
                                "{\"on\":\"\(day)\",\"outcome\":\"\(outcome)\",\"substances\":[\(outcome == "relapse" ? "\"opioids\"" : "")],"
                                + "\"treatment\":[\"methadone\"],\"note\":\"scale fill check-up \(k + 1)\"}"
                            let checkup = try InProcessRegistry.decoder.decode(CheckupRequest.self, from: Data(body.utf8))
                            _ = try await registry.monitoring.addCheckup(clinic: clinic, case: CaseHandle(handle)!, checkup)
                        }
                        if clinic == registry.clinic { local.withLock { $0.append(handle) } }
                        _ = done.next()
                        i += writers
                    }
                }
            }
            try await group.waitForAll()
        }
        progress.cancel()
        let seconds = Clock.now() - started
        print(
            "filled \(total) subjects (\(4 * total) durable writes) in \(String(format: "%.0f", seconds)) s (\(Int(Double(total) / seconds)) subjects/s)"
        )
        registry.close()
        return (local.withLock { $0 }, seconds)
    }
}

struct ScaleBenchReport: Codable, Sendable {
    var kind: String
    var machine: Machine
    var subjects: Int
    var checkupsPerSubject: Int
    var fill: String
    var fillSeconds: Double
    var databaseBytes: Int
    var databaseBytesPerSubject: Double
    var daemonStartSeconds: Double
    var daemonRSSBytesAfterStart: Int
    var daemonPeakRSSBytes: Int
    var rewrapSeconds: Double
    var rewrapped: Int
    var rewrapBatchSize: Int
    var lightLoadPerSecond: Double
    var figures: [Figure]
    var targets: [TargetResult]
}
