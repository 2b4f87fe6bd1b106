#if canImport(Glibc)
import Glibc
#endif
import Foundation

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
           let count = env["LISTEN_FDS"].flatMap({ Int($0) }), count >= 1 {
            let fd: Int32 = 3
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            return .inherited(fd: fd)
        }
        if env["LISTEN_FDS"] != nil {
            // Something between systemd and us forked (runuser, sudo): the socket is not ours.
            FileHandle.standardError.write(Data("anonregd: LISTEN_FDS is set but LISTEN_PID is not this process; binding \(socketPath) instead of adopting fd 3 (start anonregd directly, or drop privileges with setpriv, which does not fork)\n".utf8))
        }
        return .path(socketPath, mode: mode)
    }
}

public enum ListenError: Error, Equatable, CustomStringConvertible {
    case anotherDaemonAnswers(path: String)
    case notASocket(path: String)
    case unsafeDirectory(path: String, mode: UInt32)
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .anotherDaemonAnswers(let path):
            "another anonregd already answers on \(path); refusing to start (stop it first, or use another socket path)"
        case .notASocket(let path):
            "\(path) exists and is not a socket; refusing to replace it"
        case .unsafeDirectory(let path, let mode):
            "the socket directory \(path) has mode \(String(mode & 0o7777, radix: 8)) and is writable by others; use a directory only its owner can write (chmod go-w \(path))"
        case .io(let path, let operation, let code):
            "\(operation) \(path) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// The checks before binding a socket path (docs/OPERATIONS.md §Socket).
enum SocketPathGuard {
    /// - the directory must not be writable by others (anyone could replace the socket);
    /// - a socket that accepts connections belongs to a running daemon: refuse;
    /// - a socket that refuses them is stale: remove it;
    /// - anything else at the path is not ours: refuse.
    static func prepare(_ path: String) throws(ListenError) {
        let directory = (path as NSString).deletingLastPathComponent
        var st = stat()
        guard stat(directory.isEmpty ? "." : directory, &st) == 0 else {
            throw .io(path: directory, operation: "stat", errno: errno)
        }
        // Writable by others, or by a group when the directory is not ours or root's: someone
        // else could replace the socket and collect what clinics send.
        let groupWritableByOthers = st.st_mode & 0o020 != 0 && st.st_uid != geteuid() && st.st_uid != 0
        guard st.st_mode & 0o002 == 0, !groupWritableByOthers else { throw .unsafeDirectory(path: directory, mode: UInt32(st.st_mode)) }
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
