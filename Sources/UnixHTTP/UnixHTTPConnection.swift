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
    /// What arrived and is not used yet starts at `consumed`: parsing moves that offset instead
    /// of removing bytes from the front of the array, which made an answer of many small chunks
    /// cost its size times the bytes held behind each chunk.
    private var buffer: [UInt8] = []
    private var consumed = 0
    private var scratch = [UInt8](repeating: 0, count: 64 * 1024)
    /// How far the current attempt got: request bytes the socket accepted, answer bytes that
    /// arrived (what `mayRetry` decides on).
    private var requestBytesSent = 0
    private var answerBytesReceived = 0

    /// Connects when the first request is sent. `timeout` (seconds) bounds the connect and each
    /// read and write.
    public init(path: String, timeout: Int = 60) {
        self.path = path
        self.timeout = timeout
    }

    deinit { disconnect() }

    /// Connects now (a bench connects its workers before it starts the clock).
    public func open() throws(UnixSocket.Failure) {
        guard fd < 0 else { return }
        fd = try UnixSocket.connect(path, timeout: timeout)
        clearBuffer()
    }

    public func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        clearBuffer()
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
        answerBytesReceived = available
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

    /// The bytes that arrived and are not used yet.
    private var available: Int { buffer.count - consumed }

    private func clearBuffer() {
        buffer.removeAll(keepingCapacity: true)
        consumed = 0
    }

    /// Reads what the daemon sent next; the daemon closing first is `.closed`. Drops the used
    /// bytes first when they are at least as many as the unused ones, so that moving the rest
    /// costs no more than the bytes already parsed (linear in the answer's size).
    private func fill() throws(UnixSocket.Failure) {
        if consumed > 0, consumed >= available {
            buffer.removeSubrange(0..<consumed)
            consumed = 0
        }
        let n = try UnixSocket.read(fd, into: &scratch)
        guard n > 0 else { throw .closed("connection closed by the daemon") }
        buffer += scratch[0..<n]
        answerBytesReceived += n
    }

    private func protocolError(_ reason: String) -> UnixSocket.Failure {
        .io("unexpected answer: \(reason)")
    }

    /// The offset from `consumed` of the first `pattern` that starts at or after `from`, in
    /// what has arrived.
    private func find(_ pattern: [UInt8], from: Int) -> Int? {
        let count = pattern.count
        return buffer.withUnsafeBufferPointer { bytes -> Int? in
            var i = consumed + max(0, from)
            while i + count <= bytes.count {
                var k = 0
                while k < count, bytes[i + k] == pattern[k] { k += 1 }
                if k == count { return i - consumed }
                i += 1
            }
            return nil
        }
    }

    private static let headEnd: [UInt8] = [13, 10, 13, 10]
    private static let lineEnd: [UInt8] = [10]

    private func readReply() throws(UnixSocket.Failure) -> Reply {
        // The head: up to the blank line, no larger than HTTPResponseParser.maxHead.
        var searched = 0
        var headLength: Int
        while true {
            if let end = find(Self.headEnd, from: searched) {
                headLength = end
                break
            }
            searched = max(0, available - 3)
            guard available <= HTTPResponseParser.maxHead else { throw protocolError("header larger than 1 MiB") }
            try fill()
        }
        let head: HTTPResponseParser.Head
        do { head = try HTTPResponseParser.head(Data(buffer[consumed..<(consumed + headLength)])) } catch {
            throw protocolError(error.reason)
        }
        consumed += headLength + 4
        var body: [UInt8] = []
        if head.chunked {
            // RFC 9112 §7.1, with the parser's size limits.
            while true {
                let line = try readLine(limit: HTTPResponseParser.maxHead, tooLong: "a line larger than 1 MiB")
                guard let size = Self.chunkSize(buffer[line]) else { throw protocolError("bad chunk size") }
                if size == 0 {
                    // Trailer fields, if any, up to the blank line: together no larger than a head.
                    var trailers = 0
                    while true {
                        let field = try readLine(limit: HTTPResponseParser.maxHead - trailers, tooLong: "trailers larger than 1 MiB")
                        if buffer[field].allSatisfy(Self.isBlank) { break }
                        trailers += field.count + 1
                    }
                    break
                }
                guard size <= HTTPResponseParser.maxBody - body.count else { throw protocolError("body larger than 64 MiB") }
                while available < size + 2 { try fill() }
                guard buffer[consumed + size] == 13, buffer[consumed + size + 1] == 10 else {
                    throw protocolError("a chunk without its CRLF")
                }
                body += buffer[consumed..<(consumed + size)]
                consumed += size + 2
            }
        } else if let announced = head.contentLength {
            guard announced <= Int64(HTTPResponseParser.maxBody) else { throw protocolError("body larger than 64 MiB") }
            let length = Int(announced)
            while available < length { try fill() }
            body = Array(buffer[consumed..<(consumed + length)])
            consumed += length
        } else {
            // No length: the body runs to the end of the connection, no larger than a
            // Content-Length body may be.
            while available <= HTTPResponseParser.maxBody {
                let n = try UnixSocket.read(fd, into: &scratch)
                if n == 0 { break }
                buffer += scratch[0..<n]
                answerBytesReceived += n
            }
            guard available <= HTTPResponseParser.maxBody else { throw protocolError("body larger than 64 MiB") }
            body = Array(buffer[consumed...])
            disconnect()
        }
        if consumed == buffer.count { clearBuffer() }
        return Reply(status: head.status, headers: head.headers, body: body)
    }

    /// Waits for the next line (up to LF) shorter than `limit` bytes and consumes it. Returns
    /// where its bytes (without the LF) lie in `buffer`, valid until the next `fill`.
    private func readLine(limit: Int, tooLong: String) throws(UnixSocket.Failure) -> Range<Int> {
        var searched = 0
        while true {
            if let end = find(Self.lineEnd, from: searched) {
                guard end < limit else { throw protocolError(tooLong) }
                let line = consumed..<(consumed + end)
                consumed += end + 1
                return line
            }
            searched = available
            guard available < limit else { throw protocolError(tooLong) }
            try fill()
        }
    }

    static func isBlank(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 13 }

    /// A chunk-size line's size (RFC 9112 §7.1): 1 to 8 hex digits with blanks around them, then
    /// optionally `;` and extensions (ignored); nil for anything else.
    static func chunkSize(_ line: ArraySlice<UInt8>) -> Int? {
        var size = 0
        var digits = 0
        var ended = false
        for byte in line {
            if byte == 59 { break }
            if isBlank(byte) {
                ended = digits > 0
                continue
            }
            guard !ended, digits < 8, HTTPResponseParser.isHexDigit(byte) else { return nil }
            size = size * 16 + Int(byte <= 0x39 ? byte - 0x30 : (byte | 0x20) - 0x61 + 10)
            digits += 1
        }
        return digits == 0 ? nil : size
    }
}
