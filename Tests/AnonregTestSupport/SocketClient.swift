import Foundation

/// A keep-alive HTTP/1.1 client over the daemon's Unix socket, for tests that send thousands of
/// requests (curl per request would dominate their run time). One connection; not thread-safe:
/// give each concurrent worker its own. Reconnects once when the daemon closed the connection.
public final class SocketClient {
    public let socketPath: String
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    public init(socket: String) { socketPath = socket }
    deinit { if fd >= 0 { close(fd) } }

    public enum Failure: Error, CustomStringConvertible {
        case connect(String)
        case io(String)
        public var description: String {
            switch self {
            case .connect(let m), .io(let m): m
            }
        }
    }

    private func connectIfNeeded() throws {
        guard fd < 0 else { return }
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw Failure.connect("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            close(s)
            throw Failure.connect("connect \(socketPath): \(String(cString: strerror(code)))")
        }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        fd = s
        buffer = []
    }

    private func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        buffer = []
    }

    /// One request; returns the status and the body as text.
    public func request(_ method: String, _ path: String, body: String? = nil) throws -> DaemonHarness.Reply {
        do { return try attempt(method, path, body: body) } catch Failure.io {
            // The daemon may close an idle keep-alive connection: retry once on a fresh one.
            disconnect()
            return try attempt(method, path, body: body)
        }
    }

    private func attempt(_ method: String, _ path: String, body: String?) throws -> DaemonHarness.Reply {
        try connectIfNeeded()
        let payload = Array((body ?? "").utf8)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: anonreg\r\nConnection: keep-alive\r\n"
        if body != nil { head += "Content-Type: application/json\r\n" }
        if body != nil || method == "POST" { head += "Content-Length: \(payload.count)\r\n" }
        let bytes = Array((head + "\r\n").utf8) + payload
        var done = 0
        while done < bytes.count {
            // MSG_NOSIGNAL: a daemon killed mid-request gives EPIPE, not a SIGPIPE that ends
            // the whole test process (CrashUnderLoadTests kills it under load).
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                disconnect()
                throw Failure.io("write failed")
            }
            done += n
        }
        let headerEnd = try readUntilHeaderEnd()
        let headText = String(decoding: buffer[..<headerEnd], as: UTF8.self)
        buffer.removeFirst(headerEnd + 4)
        let lines = headText.components(separatedBy: "\r\n")
        let status = lines.first.flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } ?? 0
        var length = 0
        var closeAfter = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" { length = Int(value) ?? 0 }
            if name == "connection" && value.lowercased() == "close" { closeAfter = true }
            if name == "transfer-encoding" { throw Failure.io("chunked answers are not supported by this test client") }
        }
        while buffer.count < length { try fill() }
        let text = String(decoding: buffer[..<length], as: UTF8.self)
        buffer.removeFirst(length)
        if closeAfter { disconnect() }
        ResponseLog.record(method: method, target: path, status: status, body: text, client: "keep-alive")
        return DaemonHarness.Reply(status: status, body: text)
    }

    private func readUntilHeaderEnd() throws -> Int {
        let marker: [UInt8] = [13, 10, 13, 10]
        var searchFrom = 0
        while true {
            if buffer.count >= 4 {
                for i in searchFrom...(buffer.count - 4) where buffer[i] == 13 && Array(buffer[i..<(i + 4)]) == marker { return i }
                searchFrom = max(0, buffer.count - 3)
            }
            try fill()
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                disconnect()
                throw Failure.io("connection closed")
            }
            buffer += chunk[0..<n]
            return
        }
    }
}

extension DaemonHarness {
    /// Runs `count` jobs over `workers` keep-alive connections in parallel threads; `job` gets
    /// the worker's client and the job index. Returns the results in index order.
    public func parallel<T: Sendable>(
        _ count: Int, workers: Int = 4, _ job: @escaping @Sendable (SocketClient, Int) throws -> T
    ) throws -> [T] {
        let results = ResultBox<T>(count: count)
        let socket = self.socket
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let client = SocketClient(socket: socket)
            var i = worker
            while i < count {
                results.set(i, Result { try job(client, i) })
                i += workers
            }
        }
        return try results.values()
    }
}

final class ResultBox<T>: @unchecked Sendable {
    private var items: [Result<T, any Error>?]
    private let lock = NSLock()
    init(count: Int) { items = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<T, any Error>) {
        lock.lock()
        items[i] = r
        lock.unlock()
    }
    func values() throws -> [T] { try items.map { try $0!.get() } }
}
