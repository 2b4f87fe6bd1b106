import Foundation

/// posix_spawn and waitpid, for test helpers. Foundation's Process left short-lived children
/// unreaped when many tests spawned at once, so tests use this instead. Output goes to files:
/// a pipe's write end inherited by another test's long-lived child would hold off end-of-file.
public struct Spawned: Sendable {
    public let pid: pid_t

    /// Starts `executable`; stdout and stderr go to the given files (or /dev/null), stdin comes
    /// from the file `stdin` (or /dev/null). Every other descriptor is closed in the child.
    public static func start(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        stdout: String? = nil, stderr: String? = nil, keepDescriptors: [Int32] = [], stdin: String? = nil
    ) throws -> Spawned {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr ?? stdout ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        // Close everything else the test process has open (pipes, sockets, other tests' files).
        let maxFD = Int32(min(sysconf(Int32(_SC_OPEN_MAX)), 4096))
        for fd in 3..<maxFD where !keepDescriptors.contains(fd) && fcntl(fd, F_GETFD) != -1 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in env { free(pointer) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, env)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
        return Spawned(pid: pid)
    }

    /// Waits for exit; returns the exit status, or 128 + signal for a killed process.
    @discardableResult
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    /// Whether the process has exited (reaps it if so; `exitStatus` then holds the status).
    public func hasExited() -> Int32? {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        guard rc == pid else { return nil }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    public func signal(_ signal: Int32) { kill(pid, signal) }
}

extension Spawned {
    /// Waits until the process has stopped itself (`ANONREG_TEST_STOP_AT`, state `T` in
    /// /proc/PID/stat); false if it exited or the timeout passed first.
    public func waitUntilStopped(timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            {
                let state = stat[stat.index(close, offsetBy: 2)]
                if state == "T" || state == "t" { return true }
                if state == "Z" { return false }
            } else {
                return false
            }
            usleep(10_000)
        }
        return false
    }
}
