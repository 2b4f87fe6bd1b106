import Foundation

/// Starts the real `anonregd` on a temporary state directory and talks to it with curl over
/// the Unix socket, as a clinic system or an operator would.
public final class DaemonHarness: @unchecked Sendable {
    public let tmp = TemporaryDirectory()
    public var stateDir: String { tmp.sub("state") }
    /// The socket the config names, when a test moved it out of the state directory.
    public var customSocket: String?
    public var socket: String { customSocket ?? stateDir + "/anonreg.sock" }
    public var configPath: String { stateDir + "/anonreg.toml" }
    public private(set) var process: Spawned?
    /// The daemon's exit status once `stop` or `waitForExit` saw it.
    public private(set) var exitStatus: Int32?
    public private(set) var log = LogCollector()

    /// Runs `anonreg init` (with extra arguments), then lets `configure` edit the config text.
    /// `beforeInit` gets the state directory's path before `anonreg init` fills it (e.g. to mount
    /// a small tmpfs there for the disk-full test). `configure` comes first so that a trailing
    /// closure binds to it, never silently to `beforeInit`.
    public init(
        initArguments: [String] = [], configure: ((String) -> String)? = nil,
        beforeInit: ((String) throws -> Void)? = nil
    ) throws {
        // Let other uids in the test (nobody, via setpriv) traverse to the socket: group 0 only.
        chmod(tmp.path, 0o750)
        try beforeInit?(stateDir)
        let result = try Binaries.run("anonreg", ["init", "--state-dir", stateDir] + initArguments)
        guard result.status == 0 else { throw HarnessError.initFailed(result.stderr) }
        if let configure {
            let text = try String(contentsOfFile: configPath, encoding: .utf8)
            try configure(text).write(toFile: configPath, atomically: true, encoding: .utf8)
        }
    }

    /// Starts the daemon and waits until the socket answers.
    /// `launcher` runs the daemon through another program (e.g. `/usr/bin/prlimit --fsize=N`).
    public func start(environment extra: [String: String] = [:], launcher: [String] = []) throws {
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "WATCHDOG_USEC", "CREDENTIALS_DIRECTORY"] { env[key] = nil }
        env.merge(extra) { $1 }
        let logPath = tmp.sub("anonregd-\(UUID().uuidString).log")
        let command = launcher + [Binaries.path("anonregd"), "--config", configPath]
        process = try Spawned.start(command[0], Array(command.dropFirst()), environment: env, stdout: logPath)
        exitStatus = nil
        log = LogCollector(path: logPath)
        try waitUntilAnswering()
    }

    public var pid: pid_t? { process?.pid }

    public func waitUntilAnswering(timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let process, let status = process.hasExited() {
                self.process = nil
                exitStatus = status
                throw HarnessError.daemonExited(status, log.text)
            }
            if (try? request("GET", "/v1/health"))?.status == 200 { return }
            usleep(20_000)
        }
        throw HarnessError.timeout(log.text)
    }

    /// Sends `signal` (SIGTERM by default) and waits for the exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM) -> Int32 {
        guard let process else { return exitStatus ?? -1 }
        process.signal(signal)
        let status = process.wait()
        self.process = nil
        exitStatus = status
        return status
    }

    deinit {
        if let process {
            process.signal(SIGKILL)
            process.wait()
        }
    }

    public struct Reply: Sendable {
        public var status: Int
        public var body: String
        public init(status: Int, body: String) {
            self.status = status
            self.body = body
        }
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        }
        public var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
        public func string(_ key: String) -> String? { json?[key] as? String }
    }

    /// One HTTP request with curl over the socket, optionally as another uid/gid (setpriv).
    public func request(
        _ method: String, _ path: String, body: String? = nil, contentType: String? = "application/json",
        uid: UInt32? = nil, gid: UInt32 = 0, socket: String? = nil, extraCurl: [String] = []
    ) throws -> Reply {
        var arguments =
            [
                "-sS", "--max-time", "30", "--unix-socket", socket ?? self.socket, "-X", method,
                "-o", "-", "-w", "\n%{http_code}",
            ] + extraCurl
        var bodyFile: String? = nil
        if let body {
            let file = tmp.sub("body-\(UUID().uuidString)")
            try body.write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o644)
            chmod(tmp.path, 0o751)
            bodyFile = file
            arguments += ["--data-binary", "@" + file]
            if let contentType { arguments += ["-H", "Content-Type: \(contentType)"] }
        }
        defer { if let bodyFile { try? FileManager.default.removeItem(atPath: bodyFile) } }
        arguments.append("http://anonreg" + path)
        let result: Binaries.Result
        if let uid {
            result = try Binaries.runExecutable(
                "/usr/bin/setpriv",
                ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "/usr/bin/curl"] + arguments)
        } else {
            result = try Binaries.runExecutable("/usr/bin/curl", arguments)
        }
        guard result.status == 0, let split = result.stdout.range(of: "\n", options: .backwards),
            let status = Int(result.stdout[split.upperBound...])
        else {
            throw HarnessError.curlFailed(result.status, result.stderr)
        }
        let reply = Reply(status: status, body: String(result.stdout[..<split.lowerBound]))
        // curl's 000: no HTTP answer (a refused connection, a timeout) is nothing to check.
        // A test that asks curl for the headers too (`-i`) gets them before the body; only the
        // body is checked against docs/openapi.yaml.
        var recorded = reply.body
        if recorded.hasPrefix("HTTP/"), let end = recorded.range(of: "\r\n\r\n") {
            recorded = String(recorded[end.upperBound...])
        }
        if status != 0 { ResponseLog.record(method: method, target: path, status: status, body: recorded, client: "curl") }
        return reply
    }

    /// This process's environment with `ANONREG_SOCKET` pointing the CLI at this daemon, and the
    /// CLI's language fixed to English (a test that wants another passes --lang or its own locale).
    public var cliEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["ANONREG_SOCKET"] = socket
        env["LC_ALL"] = nil
        env["LC_MESSAGES"] = nil
        env["LANG"] = "C.UTF-8"
        return env
    }

    /// Runs `anonreg ARGS` against this daemon.
    public func anonreg(_ arguments: [String]) throws -> Binaries.Result {
        try Binaries.run("anonreg", arguments, environment: cliEnvironment)
    }

    /// Runs `anonreg ARGS` against this daemon, with `input` on its standard input and `extra`
    /// in its environment.
    public func anonregWith(_ arguments: [String], input: String?, environment extra: [String: String] = [:]) throws -> Binaries.Result {
        try Binaries.run("anonreg", arguments, environment: cliEnvironment.merging(extra) { $1 }, input: input)
    }

    /// Starts the daemon where it is expected to refuse to start: its exit status and log, or
    /// a nil status (and the daemon stopped again) if it started after all.
    public func startExpectingRefusal() -> (status: Int32?, log: String) {
        do {
            try start()
            stop()
            return (nil, "")
        } catch HarnessError.daemonExited(let code, let text) {
            return (code, text)
        } catch {
            return (nil, "\(error)")
        }
    }

    /// Enrols a subject and records one remission check-up on `client`; the case handle.
    public static func enrolWithCheckup(_ client: SocketClient, note: String) throws -> String {
        let r = try client.request("POST", "/v1/subjects", body: enrolBody())
        guard r.status == 201, let handle = r.string("case") else {
            throw HarnessError.requestFailed("enrol \(note): \(r.status) \(r.body)")
        }
        let c = try client.request(
            "POST", "/v1/cases/\(handle)/checkups",
            body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\",\"note\":\"\(note)\"}")
        guard c.status == 201 else { throw HarnessError.requestFailed("check-up \(note): \(c.status) \(c.body)") }
        return handle
    }

    /// `configure` for load tests that write and read flat out as one clinic: budgets far above
    /// what they send, so that they measure durability, not the clinic budgets (`[limits]`).
    public static func loadTestBudgets(_ text: String) -> String {
        setting(
            text,
            [
                "writes_per_minute": "10000000", "write_burst": "1000000",
                "reads_per_minute": "10000000", "read_burst": "1000000",
            ])
    }

    /// Replaces the value of each `key = …` line of the config text (keys the template has).
    public static func setting(_ text: String, _ values: [String: String]) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            for (key, value) in values where line.hasPrefix(key + " = ") { return key + " = " + value }
            return String(line)
        }.joined(separator: "\n")
    }

    /// A valid enrolment body.
    public static func enrolBody(
        form: String = "FORM-1", givenOn: String = "2026-01-10", enrolledOn: String = "2026-01-10",
        category: String = "dependence", scope: String = "[\"monitoring\",\"statistics\"]",
        linkage: String? = nil
    ) -> String {
        var body =
            "{\"consent\":{\"form\":\"\(form)\",\"givenOn\":\"\(givenOn)\",\"method\":\"written\",\"scope\":\(scope)},"
            + "\"category\":\"\(category)\",\"enrolledOn\":\"\(enrolledOn)\""
        if let linkage { body += ",\"linkage\":\"\(linkage)\"" }
        return body + "}"
    }

    /// `sqlite3 DB .dump` of the registry: a byte-exact picture of its content.
    public func databaseDump() throws -> String {
        try Binaries.runExecutable("/usr/bin/sqlite3", [stateDir + "/registry.sqlite", ".dump"]).stdout
    }

    /// The dump of the registry's data tables only (the audit log grows with every request).
    public func registryDump() throws -> String {
        try Binaries.runExecutable("/usr/bin/sqlite3", [stateDir + "/registry.sqlite", ".dump subject case_link record counter"]).stdout
    }

    /// How many audit entries the database holds.
    public func auditEntryCount() throws -> Int {
        Int(
            try Binaries.runExecutable("/usr/bin/sqlite3", [stateDir + "/registry.sqlite", "SELECT count(*) FROM audit_entry"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    public enum HarnessError: Error, CustomStringConvertible {
        case initFailed(String)
        case daemonExited(Int32, String)
        case timeout(String)
        case curlFailed(Int32, String)
        case requestFailed(String)

        public var description: String {
            switch self {
            case .initFailed(let e): "anonreg init failed: \(e)"
            case .daemonExited(let s, let log): "anonregd exited with \(s):\n\(log)"
            case .timeout(let log): "anonregd did not answer in time:\n\(log)"
            case .curlFailed(let s, let e): "curl failed (\(s)): \(e)"
            case .requestFailed(let what): "request failed: \(what)"
            }
        }
    }
}

/// A child's log file, read on demand.
public final class LogCollector: @unchecked Sendable {
    private let path: String?

    public init() { path = nil }
    public init(path: String) { self.path = path }

    public var text: String { path.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? "" }
}
