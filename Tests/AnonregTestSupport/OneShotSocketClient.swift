import Foundation

/// A blocking HTTP/1.1 client over a Unix socket for load and fault tests: one request per
/// connection (`Connection: close`), no process spawn per request, so several threads can keep
/// a daemon busy. A request counts as answered only when the whole response was read.
public struct OneShotSocketClient: Sendable {
    public let socketPath: String

    public init(socketPath: String) { self.socketPath = socketPath }

    public struct Answer: Sendable {
        public var status: Int
        public var body: String
        public var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] }
        public var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
        public func string(_ key: String) -> String? { json?[key] as? String }
    }

    public enum Failure: Error {
        case connect(Int32)
        case io(Int32)
        case incomplete
    }

    public func send(_ method: String, _ path: String, body: String? = nil) throws -> Answer {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure.connect(errno) }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes.prefix($0.count - 1)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw Failure.connect(errno) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let payload = Array((body ?? "").utf8)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: anonreg\r\nConnection: close\r\n"
        if body != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(payload.count)\r\n\r\n"
        let request = Array(head.utf8) + payload
        var written = 0
        while written < request.count {
            // MSG_NOSIGNAL: a daemon killed mid-request gives EPIPE, not a SIGPIPE that ends
            // the whole test process (CrashUnderLoadTests kills it under load).
            let n = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + written, request.count - written, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure.io(errno)
            }
            written += n
        }
        var raw = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure.io(errno)
            }
            if n == 0 { break }
            raw += buffer[0..<n]
        }
        let answer = try Self.parse(raw)
        ResponseLog.record(method: method, target: path, status: answer.status, body: answer.body, client: "one-shot")
        return answer
    }

    /// Status line, headers, and a body that must be complete (Content-Length or chunked).
    static func parse(_ raw: [UInt8]) throws -> Answer {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, raw.count - 3)).first(where: { Array(raw[$0..<$0 + 4]) == separator }) else {
            throw Failure.incomplete
        }
        let head = String(decoding: raw[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure.incomplete }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[(end + 4)...])
        if let length = headers["content-length"].flatMap(Int.init) {
            guard body.count >= length else { throw Failure.incomplete }
            body = Array(body.prefix(length))
        } else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            var out = [UInt8]()
            var rest = body[...]
            while true {
                guard let lineEnd = rest.indices.dropLast().first(where: { rest[$0] == 13 && rest[$0 + 1] == 10 }),
                    let size = Int(String(decoding: rest[..<lineEnd], as: UTF8.self).split(separator: ";").first ?? "", radix: 16)
                else { throw Failure.incomplete }
                rest = rest[(lineEnd + 2)...]
                if size == 0 { break }
                guard rest.count >= size + 2 else { throw Failure.incomplete }
                out += rest.prefix(size)
                rest = rest.dropFirst(size + 2)
            }
            body = out
        }
        return Answer(status: status, body: String(decoding: body, as: UTF8.self))
    }
}
