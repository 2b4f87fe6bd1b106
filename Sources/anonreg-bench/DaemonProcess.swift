import Foundation
import UnixHTTP

/// A state directory made by `anonreg init` and the real `anonregd` serving it, started with
/// posix_spawn the way Tests/AnonregTestSupport/DaemonHarness.swift does.
final class DaemonProcess {
    let binDir: String
    let stateDir: String
    var socket: String { stateDir + "/anonreg.sock" }
    var configPath: String { stateDir + "/anonreg.toml" }
    var databasePath: String { stateDir + "/registry.sqlite" }
    private(set) var pid: pid_t = 0
    let logPath: String

    /// Runs `anonreg init --state-dir` and lets `configure` edit the config text.
    init(binDir: String, stateDir: String, configure: (String) -> String) throws {
        self.binDir = binDir
        self.stateDir = stateDir
        self.logPath = stateDir + ".anonregd.log"
        let status = try Self.run(binDir + "/anonreg", ["init", "--state-dir", stateDir], output: stateDir + ".init.log")
        guard status == 0 else {
            throw BenchError.unexpected(
                "anonreg init failed (\(status)): \((try? String(contentsOfFile: stateDir + ".init.log", encoding: .utf8)) ?? "")")
        }
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
        try configure(text).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Replaces this state directory's keys with a copy of `keys` (`cp -a`: modes kept), as
    /// another node of the same registry holds them; its own erasure ledger and audit anchor
    /// are its own, so they are not copied.
    func replaceKeys(with keys: String) throws {
        let mine = stateDir + "/keys"
        try FileManager.default.removeItem(atPath: mine)
        guard try Self.run("/bin/cp", ["-a", keys, mine], output: stateDir + ".cp.log") == 0 else {
            throw BenchError.unexpected("copying the keys directory failed")
        }
        for own in ["erasure-ledger", "audit-anchor"] { try? FileManager.default.removeItem(atPath: mine + "/" + own) }
    }

    /// Starts the daemon and returns the seconds from spawn until `/v1/health` answers 200.
    @discardableResult
    func start() throws -> Double {
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "WATCHDOG_USEC", "CREDENTIALS_DIRECTORY"] { env[key] = nil }
        let started = Clock.now()
        pid = try Self.spawn(binDir + "/anonregd", ["--config", configPath], environment: env, output: logPath)
        while Clock.now() - started < 60 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = 0
                throw BenchError.unexpected(
                    "anonregd exited (\(status)):\n\((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
            }
            if let connection = try? UnixHTTPConnection.connected(socket), let reply = try? connection.send("GET", "/v1/health"),
                reply.status == 200
            {
                return Clock.now() - started
            }
            usleep(2_000)
        }
        throw BenchError.unexpected("anonregd did not answer within 60 s")
    }

    /// `VmHWM` (peak resident set) and `VmRSS` of the daemon, in bytes, from /proc/PID/status.
    func memory() -> (peak: Int, current: Int) {
        guard pid > 0, let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
                let digits = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0"
                return (Int(digits.trimmingCharacters(in: .whitespaces)) ?? 0) * 1024
            }
            return 0
        }
        return (field("VmHWM"), field("VmRSS"))
    }

    /// SIGTERM, then wait for the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard pid > 0 else { return -1 }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        pid = 0
        return status
    }

    deinit {
        if pid > 0 {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    // MARK: - Processes

    static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, output: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let maxFD = Int32(min(sysconf(Int32(_SC_OPEN_MAX)), 4096))
        for fd in 3..<maxFD where fcntl(fd, F_GETFD) != -1 { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in env { free(pointer) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, env)
        guard rc == 0 else { throw BenchError.io("posix_spawn \(executable): \(rc)") }
        return pid
    }

    /// Runs a program to completion; returns its exit status.
    static func run(_ executable: String, _ arguments: [String], output: String) throws -> Int32 {
        let pid = try spawn(executable, arguments, output: output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// Monotonic seconds.
enum Clock {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
