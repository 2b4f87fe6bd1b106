import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One blocking HTTP/1.1 connection to anonregd over its Unix socket: requests strictly one
/// after another, kept alive between them (what a clinic system's connection pool does), or
/// one request with `Connection: close`. Every answer is read to its end by Content-Length or
/// chunked encoding and checked by `HTTPResponseParser`'s limits (every answer is untrusted).
/// Not thread-safe: one per worker.
///
/// The CLI (AnonregClinic's `UnixHTTPClient`, which adds its socket-trust checks and streamed
/// downloads), the bench and the tests' clients are all built on it.
public final class UnixHTTPConnection {
    public struct Reply: Sendable {
        public var status: Int
        /// Header names lower-cased; a repeated header keeps its first value.
        public var headers: [String: String]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    public let path: String
    private let timeout: Int
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private var scratch = [UInt8](repeating: 0, count: 64 * 1024)
    /// How far the current attempt got: request bytes the socket accepted, answer bytes that
    /// arrived (what `mayRetry` decides on).
    private var requestBytesSent = 0
    private var answerBytesReceived = 0

    /// Connects when the first request is sent. `timeout` (seconds) bounds each read and write.
    public init(path: String, timeout: Int = 60) {
        self.path = path
        self.timeout = timeout
    }

    deinit { disconnect() }

    /// Connects now (a bench connects its workers before it starts the clock).
    public func open() throws(UnixSocket.Failure) {
        guard fd < 0 else { return }
        fd = try UnixSocket.connect(path, timeout: timeout)
        buffer.removeAll(keepingCapacity: true)
    }

    public func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        buffer.removeAll(keepingCapacity: true)
    }

    /// Sends one request and reads its whole answer. `headers` are added after Host; a body
    /// gets its Content-Length (and a POST without one, Content-Length: 0).
    ///
    /// With `retryOnStaleConnection`, a request that met a connection the daemon had closed
    /// while it was idle is sent once more on a fresh connection, under this rule (RFC 9112
    /// §9.3.1), all of whose parts must hold:
    /// - the connection was reused, kept alive from an earlier request (a fresh one is never stale);
    /// - the failure is the daemon closing it (`.closed`: end of stream, EPIPE, ECONNRESET),
    ///   never a timeout, another I/O error or an answer that could not be parsed;
    /// - and either the socket accepted no byte of the request (none of it reached the daemon,
    ///   so any method may be sent again), or no byte of an answer arrived and the method is
    ///   safe (GET, HEAD, OPTIONS). A POST that was sent whole may have been read and carried out
    ///   before the connection closed: it is never sent twice, its caller gets the error.
    public func request(
        _ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        retryOnStaleConnection: Bool = false
    ) throws(UnixSocket.Failure) -> Reply {
        let reused = fd >= 0
        do {
            return try attempt(method, target, headers: headers, body: body)
        } catch {
            guard retryOnStaleConnection, reused, mayRetry(method, after: error) else { throw error }
            return try attempt(method, target, headers: headers, body: body)
        }
    }

    /// The methods RFC 9110 §9.2.1 calls safe: sending one twice changes nothing.
    static let safeMethods: Set<String> = ["GET", "HEAD", "OPTIONS"]

    /// The last part of the retry rule (see `request`), for the attempt that just failed.
    private func mayRetry(_ method: String, after error: UnixSocket.Failure) -> Bool {
        guard case .closed = error else { return false }
        if requestBytesSent == 0 { return true }
        return answerBytesReceived == 0 && Self.safeMethods.contains(method)
    }

    private func attempt(_ method: String, _ target: String, headers: [(String, String)], body: [UInt8]?) throws(UnixSocket.Failure)
        -> Reply
    {
        requestBytesSent = 0
        answerBytesReceived = 0
        try open()
        answerBytesReceived = buffer.count
        var head = "\(method) \(target) HTTP/1.1\r\nHost: anonreg\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body {
            head += "Content-Length: \(body.count)\r\n"
        } else if method == "POST" || method == "PUT" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        do {
            try UnixSocket.writeAll(fd, Array(head.utf8) + (body ?? []), accepted: &requestBytesSent)
            let reply = try readReply()
            if reply.headers["connection"]?.lowercased() == "close" { disconnect() }
            return reply
        } catch {
            disconnect()
            throw error
        }
    }

    /// Reads what the daemon sent next; the daemon closing first is `.closed`.
    private func fill() throws(UnixSocket.Failure) {
        let n = try UnixSocket.read(fd, into: &scratch)
        guard n > 0 else { throw .closed("connection closed by the daemon") }
        buffer += scratch[0..<n]
        answerBytesReceived += n
    }

    private func protocolError(_ failure: HTTPResponseParser.Failure) -> UnixSocket.Failure {
        .io("unexpected answer: \(failure.reason)")
    }

    private func readReply() throws(UnixSocket.Failure) -> Reply {
        // The head: up to the blank line, no larger than HTTPResponseParser.maxHead.
        var headEnd: Int?
        var searchFrom = 0
        while headEnd == nil {
            if buffer.count >= 4 {
                var i = max(0, searchFrom - 3)
                while i + 3 < buffer.count {
                    if buffer[i] == 13, buffer[i + 1] == 10, buffer[i + 2] == 13, buffer[i + 3] == 10 {
                        headEnd = i
                        break
                    }
                    i += 1
                }
                searchFrom = buffer.count
            }
            if headEnd == nil {
                guard buffer.count <= HTTPResponseParser.maxHead else { throw protocolError(.init(reason: "header larger than 1 MiB")) }
                try fill()
            }
        }
        let head: HTTPResponseParser.Head
        do { head = try HTTPResponseParser.head(Data(buffer[0..<headEnd!])) } catch { throw protocolError(error) }
        buffer.removeSubrange(0..<(headEnd! + 4))
        var body: [UInt8] = []
        if head.chunked {
            // RFC 9112 §7.1, with the parser's size limits.
            while true {
                let line = try readLine()
                let sizeText = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
                guard !sizeText.isEmpty, sizeText.utf8.count <= 8, let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16),
                    size >= 0
                else { throw protocolError(.init(reason: "bad chunk size")) }
                if size == 0 {
                    // Trailer fields, if any, up to the blank line.
                    while try !readLine().isEmpty {}
                    break
                }
                guard size <= HTTPResponseParser.maxBody - body.count else { throw protocolError(.init(reason: "body larger than 64 MiB")) }
                while buffer.count < size + 2 { try fill() }
                guard buffer[size] == 13, buffer[size + 1] == 10 else { throw protocolError(.init(reason: "a chunk without its CRLF")) }
                body += buffer[0..<size]
                buffer.removeSubrange(0..<(size + 2))
            }
        } else if let announced = head.contentLength {
            guard announced <= Int64(HTTPResponseParser.maxBody) else { throw protocolError(.init(reason: "body larger than 64 MiB")) }
            let length = Int(announced)
            while buffer.count < length { try fill() }
            body = Array(buffer[0..<length])
            buffer.removeSubrange(0..<length)
        } else {
            // No length: the body runs to the end of the connection.
            while true {
                let n = try UnixSocket.read(fd, into: &scratch)
                if n == 0 { break }
                buffer += scratch[0..<n]
                guard buffer.count <= HTTPResponseParser.maxBody else { throw protocolError(.init(reason: "body larger than 64 MiB")) }
            }
            body = buffer
            buffer.removeAll()
            disconnect()
        }
        return Reply(status: head.status, headers: head.headers, body: body)
    }

    private func readLine() throws(UnixSocket.Failure) -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                buffer.removeSubrange(0...i)
                return line
            }
            guard buffer.count <= HTTPResponseParser.maxHead else { throw protocolError(.init(reason: "a line larger than 1 MiB")) }
            try fill()
        }
    }
}
