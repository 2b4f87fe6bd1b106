import ArgumentParser
import Foundation
import RegistryCore
import RegistryProtocol
import UnixHTTP

/// `make bench-history`: what a case's history costs. Status reads and check-ups decrypt and
/// walk every record of the case (the monitoring state is computed from all of them), so their
/// latency should grow with the number of check-ups already recorded. Cases with 1, 50 and 200
/// check-ups are made over the socket, through the daemon as a clinic makes them; then each
/// length is measured over one connection: status reads for `--seconds`, then exactly one new
/// check-up per case (so every measured check-up lands on a case of exactly that length).
struct HistoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history", abstract: "Status and check-up latency against the check-ups a case holds (make bench-history).")

    @OptionGroup var common: CommonOptions

    @Option(parsing: .upToNextOption, help: "Check-ups recorded per case before measuring (one pool of cases each).")
    var lengths: [Int] = [1, 50, 200]

    @Option(help: "Cases per length: the number of check-ups measured at each length.")
    var cases = 400

    @Option(help: "Seconds of status reads per length.")
    var seconds: Double = 5

    @Option(help: "Connections that record the histories beforehand.")
    var fillConnections = 8

    @Option(help: "anonregd log level for the run (the default config's level is info).")
    var logLevel = "info"

    /// The longest history allowed: its daily `remission` check-ups must span far less than the
    /// 1095 days of remission that complete a `dependence` case, or monitoring would complete
    /// and refuse the measured check-up (422 monitoring_completed).
    static let longestHistory = 300

    func validate() throws {
        guard !lengths.isEmpty, lengths.allSatisfy({ (0...Self.longestHistory).contains($0) }) else {
            throw ValidationError("--lengths must be 0 to \(Self.longestHistory)")
        }
        guard cases > 0, fillConnections > 0, seconds > 0 else {
            throw ValidationError("--cases, --fill-connections and --seconds must be positive")
        }
    }

    func run() async throws {
        let loadBefore = Machine.loadAverage()
        let work = try common.makeWorkDir("bench-history")
        defer { common.cleanUp(work) }
        let lengths = Array(Set(self.lengths)).sorted()
        let today = SystemDayClock().today
        let plan = HistoryPlan(today: today, longest: lengths.last!)
        print(
            "anonreg-bench history: lengths \(lengths), \(cases) cases each, \(seconds) s of status reads per length, 1 connection, load average \(loadBefore), scratch \(work)"
        )
        let daemon = try DaemonProcess(binDir: common.resolvedBinDir, stateDir: work + "/state") { benchConfig($0, logLevel: logLevel) }
        try daemon.start()
        defer { daemon.stop() }

        let fillStarted = Clock.now()
        let pools = try Self.fill(socket: daemon.socket, lengths: lengths, cases: cases, plan: plan, connections: fillConnections)
        let fillSeconds = Clock.now() - fillStarted
        let filled = lengths.reduce(0) { $0 + $1 * cases }
        print("recorded \(filled) check-ups on \(lengths.count * cases) cases in \(String(format: "%.1f", fillSeconds)) s")

        // One second of unmeasured reads over every pool, so the first measured length does not
        // also pay for cold caches.
        let everyCase = lengths.flatMap { pools[$0]! }
        let warm = SharedInt()
        _ = try LoadRunner.run(socket: daemon.socket, connections: 1, seconds: 1) { _ in
            ("warm-up", BenchRequest(method: "GET", target: "/v1/cases/\(everyCase[warm.next() % everyCase.count])"))
        }

        var lines: [HistoryLine] = []
        let checkupBody = Array(Workload.checkupBody(on: today).utf8)
        for length in lengths {
            let pool = pools[length]!
            let reads = SharedInt()
            let status = try LoadRunner.run(socket: daemon.socket, connections: 1, seconds: seconds) { _ in
                ("status", BenchRequest(method: "GET", target: "/v1/cases/\(pool[reads.next() % pool.count])"))
            }
            // Each case once: a case measured twice would hold length + 1 check-ups the second time.
            let posted = SharedInt()
            let checkup = try LoadRunner.run(
                socket: daemon.socket, connections: 1, seconds: 600, stop: { posted.value >= pool.count },
                next: { _ in
                    ("checkup", BenchRequest(method: "POST", target: "/v1/cases/\(pool[posted.next()])/checkups", body: checkupBody))
                })
            let line = HistoryLine(
                checkupsRecorded: length,
                status: Figure(
                    op: "status", side: "socket", concurrency: 1, histogram: status.total, errors: status.errors.values.reduce(0, +),
                    seconds: status.seconds, note: "GET /v1/cases/{case}, round-robin over \(pool.count) cases"),
                checkup: Figure(
                    op: "checkup", side: "socket", concurrency: 1, histogram: checkup.total, errors: checkup.errors.values.reduce(0, +),
                    seconds: checkup.seconds, note: "POST /v1/cases/{case}/checkups dated \(today), once per case"))
            report(line, errors: [status.firstError, checkup.firstError].compactMap { $0 })
            lines.append(line)
        }
        let memory = daemon.memory()

        let result = HistoryReport(
            kind: "history", machine: Machine.current(loadBefore: loadBefore), lengths: lengths, casesPerLength: cases,
            statusSecondsPerLength: seconds, enrolledOn: plan.enrolledOn, lastRecordedCheckup: plan.lastRecorded,
            fillSeconds: fillSeconds, fillCheckups: filled, daemonPeakRSSBytes: memory.peak,
            databaseBytesAtEnd: SocketBench.fileBytes(daemon.databasePath), lines: lines, ratios: Self.ratios(lines), logLevel: logLevel)
        let markdown = Self.markdown(result)
        print("\n" + markdown)
        let path = try ResultsWriter.write(result, markdown: markdown, dir: common.results, kind: "history")
        print("results: \(path) and \(path.replacingOccurrences(of: ".json", with: ".md"))")
    }

    func report(_ line: HistoryLine, errors: [String]) {
        for f in [line.status, line.checkup] {
            print(
                "  \(line.checkupsRecorded) recorded, \(f.op): \(ResultsWriter.rate(f.perSecond))/s p50 \(ResultsWriter.ms(f.p50ms)) ms p99 \(ResultsWriter.ms(f.p99ms)) ms (\(f.requests) ok, \(f.errors) errors)"
            )
        }
        for error in errors { print("    first error: \(error)") }
        flushOutput()
    }

    // MARK: - Making the histories

    /// Enrols `cases` cases per length and records their check-ups in date order, each case on
    /// one connection (its check-ups must arrive in order), the cases spread over `connections`.
    static func fill(socket: String, lengths: [Int], cases: Int, plan: HistoryPlan, connections: Int) throws -> [Int: [String]] {
        let jobs = lengths.flatMap { length in Array(repeating: length, count: cases) }
        let pools = Locked<[Int: [String]]>([:])
        let failure = Locked<String?>(nil)
        let recorded = SharedInt()
        let group = DispatchGroup()
        for t in 0..<connections {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    let c = try UnixHTTPConnection.connected(socket)
                    var j = t
                    while j < jobs.count, failure.withLock({ $0 }) == nil {
                        let length = jobs[j]
                        let reply = try c.send("POST", "/v1/subjects", json: Workload.enrolBody(enrolledOn: plan.enrolledOn))
                        guard reply.status == 201 else { throw BenchError.unexpected("enrol: \(reply.status) \(reply.text)") }
                        let handle = try JSONDecoder().decode(EnrolResponse.self, from: Data(reply.body)).case
                        for day in plan.days(length) {
                            let answer = try c.send("POST", "/v1/cases/\(handle)/checkups", json: Workload.checkupBody(on: day))
                            guard answer.status == 201 else {
                                throw BenchError.unexpected("check-up on \(day): \(answer.status) \(answer.text.prefix(300))")
                            }
                            _ = recorded.next()
                        }
                        pools.withLock { $0[length, default: []].append(handle) }
                        j += connections
                    }
                } catch { failure.withLock { $0 = "\(error)" } }
            }.start()
        }
        let total = jobs.reduce(0, +)
        let started = Clock.now()
        while group.wait(timeout: .now() + 15) == .timedOut {
            let n = recorded.value
            print("  recorded \(n) / \(total) check-ups (\(Int(Double(n) / (Clock.now() - started)))/s)")
            flushOutput()
        }
        if let f = failure.withLock({ $0 }) { throw BenchError.unexpected("recording the histories: \(f)") }
        return pools.withLock { $0 }
    }

    // MARK: - Results

    /// The longest history over the shortest, for each figure.
    static func ratios(_ lines: [HistoryLine]) -> [HistoryRatio] {
        guard let short = lines.first, let long = lines.last, lines.count > 1 else { return [] }
        func ratio(_ name: String, _ value: (HistoryLine) -> Double) -> HistoryRatio {
            HistoryRatio(
                figure: name, shortest: short.checkupsRecorded, longest: long.checkupsRecorded, atShortest: value(short),
                atLongest: value(long), ratio: value(short) > 0 ? value(long) / value(short) : 0)
        }
        return [
            ratio("status p50 ms") { $0.status.p50ms }, ratio("status p99 ms") { $0.status.p99ms },
            ratio("checkup p50 ms") { $0.checkup.p50ms }, ratio("checkup p99 ms") { $0.checkup.p99ms },
        ]
    }

    static func markdown(_ r: HistoryReport) -> String {
        var out = "## anonreg-bench history\n\n"
        out += "Machine: \(r.machine.cpus) CPUs (\(r.machine.cpuModel)), \(r.machine.memTotalMiB) MiB, Linux \(r.machine.kernel); "
        out +=
            "load average before \(r.machine.loadBefore), after \(r.machine.loadAfter). One connection; daemon log level \(r.logLevel).\n\n"
        out += "\(r.casesPerLength) `dependence` cases per length, enrolled \(r.enrolledOn), daily `remission` check-ups up to "
        out += "\(r.lastRecordedCheckup) (\(r.fillCheckups) in \(String(format: "%.0f", r.fillSeconds)) s over the socket). "
        out += "Status: \(r.statusSecondsPerLength) s of GET /v1/cases/{case}. Check-up: one POST per case, dated today.\n\n"
        out += "| check-ups recorded | status req/s | status p50 ms | status p99 ms "
        out += "| check-up req/s | check-up p50 ms | check-up p99 ms | check-ups measured | errors |\n"
        out += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        let (rate, ms) = (ResultsWriter.rate, ResultsWriter.ms)
        for l in r.lines {
            let (s, c) = (l.status, l.checkup)
            out += "| \(l.checkupsRecorded) | \(rate(s.perSecond)) | \(ms(s.p50ms)) | \(ms(s.p99ms)) "
            out += "| \(rate(c.perSecond)) | \(ms(c.p50ms)) | \(ms(c.p99ms)) | \(c.requests) | \(s.errors + c.errors) |\n"
        }
        if let first = r.ratios.first {
            out += "\n| figure | at \(first.shortest) | at \(first.longest) | \(first.longest) / \(first.shortest) |\n"
            out += "|---|---:|---:|---:|\n"
            for x in r.ratios {
                out += "| \(x.figure) | \(ms(x.atShortest)) | \(ms(x.atLongest)) | \(String(format: "%.2f", x.ratio))× |\n"
            }
        }
        return out
    }
}

/// The dates of the histories. Every case is enrolled `longest + 20` days ago; a case of length
/// L has daily `remission` check-ups ending 10 days ago, so the measured check-up (today) comes
/// strictly after the last one. The dates stay clear of every rule that would refuse it: none in
/// the future or before enrolment, enrolment far inside the cap (1825 days), the remission
/// clock far from its 1095 days (no completion), and the last check-up far from the 730 days
/// of inactivity after which the sweeper erases a case.
struct HistoryPlan {
    let today: Day
    let enrolledOn: Day
    let lastRecorded: Day

    init(today: Day, longest: Int) {
        self.today = today
        lastRecorded = today.adding(days: -10)
        enrolledOn = today.adding(days: -(longest + 20))
    }

    /// The dates of a history of `length` check-ups, oldest first.
    func days(_ length: Int) -> [Day] {
        (0..<length).map { lastRecorded.adding(days: -(length - 1 - $0)) }
    }
}

struct HistoryLine: Codable, Sendable {
    var checkupsRecorded: Int
    var status: Figure
    var checkup: Figure
}

struct HistoryRatio: Codable, Sendable {
    var figure: String
    var shortest: Int
    var longest: Int
    var atShortest: Double
    var atLongest: Double
    var ratio: Double
}

struct HistoryReport: Codable, Sendable {
    var kind: String
    var machine: Machine
    var lengths: [Int]
    var casesPerLength: Int
    var statusSecondsPerLength: Double
    var enrolledOn: Day
    var lastRecordedCheckup: Day
    var fillSeconds: Double
    var fillCheckups: Int
    var daemonPeakRSSBytes: Int
    var databaseBytesAtEnd: Int
    var lines: [HistoryLine]
    var ratios: [HistoryRatio]
    var logLevel: String
}
