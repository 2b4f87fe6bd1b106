import Foundation
import RegistryProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// Where the daemon listens: a socket path it binds itself, or a socket systemd passed in.
public enum ListenAddress: Sendable, Equatable {
    case path(String, mode: UInt32)
    /// Socket activation: fd 3 (`SD_LISTEN_FDS_START`).
    case inherited(fd: Int32)

    /// `LISTEN_PID`/`LISTEN_FDS` name this process: adopt fd 3 (sd_listen_fds(3)). The variables
    /// are removed so children do not inherit them.
    public static func fromEnvironment(socketPath: String, mode: UInt32) -> ListenAddress {
        let env = ProcessInfo.processInfo.environment
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        if let pid = env["LISTEN_PID"].flatMap({ Int32($0) }), pid == getpid(),
            let count = env["LISTEN_FDS"].flatMap({ Int($0) }), count >= 1
        {
            let fd: Int32 = 3
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return .inherited(fd: fd)
        }
        if env["LISTEN_FDS"] != nil {
            // Something between systemd and us forked (runuser, sudo): the socket is not ours.
            FileHandle.standardError.write(
                Data(
                    "anonregd: LISTEN_FDS is set but LISTEN_PID is not this process; binding \(socketPath) instead of adopting fd 3 (start anonregd directly, or drop privileges with setpriv, which does not fork)\n"
                        .utf8))
        }
        return .path(socketPath, mode: mode)
    }
}

public enum ListenError: Error, Equatable, CustomStringConvertible {
    case anotherDaemonAnswers(path: String)
    case notASocket(path: String)
    /// The socket's directory, or one of its ancestors, lets someone other than root or the
    /// daemon's user replace the socket: `problem` says how, `fix` what to run.
    case unsafeDirectory(path: String, problem: String, fix: String)
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .anotherDaemonAnswers(let path):
            "another anonregd already answers on \(path); refusing to start (stop it first, or use another socket path)"
        case .notASocket(let path):
            "\(path) exists and is not a socket; refusing to replace it"
        case .unsafeDirectory(let path, let problem, let fix):
            "refusing to listen: \(path) \(problem), so someone other than root or anonregd's user could rename the socket and listen in its place (docs/OPERATIONS.md §Socket); \(fix)"
        case .io(let path, let operation, let code):
            "\(operation) \(path) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// The checks before binding a socket path (docs/OPERATIONS.md §Socket).
enum SocketPathGuard {
    /// - the socket's directory and every ancestor must be safe (`checkDirectories`);
    /// - a socket that accepts connections belongs to a running daemon: refuse;
    /// - a socket that refuses them is stale: remove it;
    /// - anything else at the path is not ours: refuse.
    static func prepare(_ path: String, daemonUID: uid_t = geteuid()) throws(ListenError) {
        try checkDirectories(of: path, daemonUID: daemonUID)
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw .io(path: path, operation: "stat", errno: errno)
        }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(path: path) }
        switch probe(path) {
        case .answers:
            throw .anotherDaemonAnswers(path: path)
        case .refused:
            // Only a refused connection proves nobody listens: then the socket is stale.
            guard unlink(path) == 0 || errno == ENOENT else { throw .io(path: path, operation: "remove stale socket", errno: errno) }
        case .unknown(let code):
            // EACCES and the like say nothing about a listener: never remove what may be live.
            throw .io(path: path, operation: "check whether another daemon listens on", errno: code)
        }
    }

    /// The socket's directory and every ancestor: owned by root or the daemon's user, and
    /// writable by nobody else unless sticky (RegistryProtocol `SocketDirectories`).
    static func checkDirectories(of socketPath: String, daemonUID: uid_t = geteuid()) throws(ListenError) {
        if let problem = SocketDirectories.firstProblem(socketPath: socketPath, trusted: [0, UInt32(daemonUID)]) {
            throw .unsafeDirectory(path: problem.path, problem: problem.problem, fix: problem.fix)
        }
    }

    /// The path an inherited listening socket is bound to (`getsockname`), or nil for an
    /// abstract or unnamed socket.
    static func boundPath(fd: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0, address.sun_family == sa_family_t(AF_UNIX) else { return nil }
        let path = withUnsafeBytes(of: &address.sun_path) { raw -> String in
            let bytes = raw.prefix(max(0, Int(length) - MemoryLayout<sa_family_t>.size))
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        return path.hasPrefix("/") ? path : nil
    }

    enum Probe: Equatable {
        case answers
        case refused
        case unknown(Int32)
    }

    /// Whether something accepts connections on the socket at `path`.
    static func answers(_ path: String) -> Bool { probe(path) == .answers }

    static func probe(_ path: String) -> Probe {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .unknown(errno) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return .unknown(ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result == 0 { return .answers }
        return errno == ECONNREFUSED ? .refused : .unknown(errno)
    }
}
