import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A connected Unix stream socket and the two blocking primitives every anonreg HTTP client
/// needs: write all of a request, read what arrived. Used by the CLI, the Python-free tests and
/// the bench alike (`UnixHTTPConnection`), so that there is one way to reach anonregd.
public enum UnixSocket {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// socket(2) failed.
        case create(errno: Int32)
        /// The path does not fit in `sockaddr_un`.
        case pathTooLong(String)
        /// connect(2) failed (ECONNREFUSED: nobody listens; EACCES: not this user's socket).
        case connect(path: String, errno: Int32)
        /// A read or write failed, or an answer could not be used.
        case io(String)
        /// The peer closed the connection: end of stream, EPIPE or ECONNRESET (what a kept-alive
        /// connection the daemon closed while it was idle gives).
        case closed(String)
        /// Nothing within the timeout: no answer, no room to send, or no connection accepted.
        case timedOut

        public var description: String {
            switch self {
            case .create(let code): "cannot create a socket: \(String(cString: strerror(code)))"
            case .pathTooLong(let path): "socket path too long: \(path)"
            case .connect(let path, let code): "connect \(path): \(String(cString: strerror(code)))"
            case .io(let what), .closed(let what): what
            case .timedOut: "no answer in time"
            }
        }
    }

    /// Connects to `path`. `timeout` (seconds, 0 for none) bounds the connect itself (a daemon
    /// whose listen backlog is full: `.timedOut`) and every later read and write: both limits are
    /// set before connect(2), which waits for at most SO_SNDTIMEO on a Unix socket.
    public static func connect(_ path: String, timeout: Int = 60) throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .create(errno: errno) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw .pathTooLong(path)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        if timeout > 0 {
            var limit = timeval(tv_sec: timeout, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        }
        while true {
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if rc == 0 { return fd }
            let code = errno
            if code == EINTR { continue }
            close(fd)
            // EAGAIN: the listener's backlog stayed full for the whole timeout.
            if timeout > 0, code == EAGAIN || code == EWOULDBLOCK { throw .timedOut }
            throw .connect(path: path, errno: code)
        }
    }

    /// Writes every byte. MSG_NOSIGNAL: a peer gone mid-request is EPIPE, never a SIGPIPE that
    /// ends the calling process.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) {
        var accepted = 0
        try writeAll(fd, bytes, accepted: &accepted)
    }

    /// As `writeAll`, counting in `accepted` the bytes the socket took, also when it fails: 0
    /// means none of them left this process.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], accepted: inout Int) throws(Failure) {
        accepted = 0
        while accepted < bytes.count {
            let done = accepted
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { throw .timedOut }
                throw failure("write failed", code)
            }
            accepted += n
        }
    }

    /// Reads what arrived into `buffer` (at most its size); 0 means the peer closed.
    public static func read(_ fd: Int32, into buffer: inout [UInt8]) throws(Failure) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return n }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { throw .timedOut }
            throw failure("read failed", code)
        }
    }

    /// EPIPE and ECONNRESET are the peer closing (`.closed`); any other errno is `.io`.
    static func failure(_ what: String, _ code: Int32) -> Failure {
        let message = "\(what): \(String(cString: strerror(code)))"
        return code == EPIPE || code == ECONNRESET ? .closed(message) : .io(message)
    }
}
