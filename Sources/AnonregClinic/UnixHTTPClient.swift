import Foundation
import UnixHTTP

#if canImport(Glibc)
    import Glibc
#endif

/// The CLI's HTTP/1.1 client over anonregd's Unix socket: one request per connection, bodies by
/// Content-Length or chunked, built on UnixHTTP (the socket and the answer parser every anonreg
/// client shares) with the CLI's own parts: the socket-trust checks before and after connect
/// (SocketTrust) and streamed downloads. The clinic side uses it so that it links no server, key
/// or database code (docs/OPERATIONS.md §CLI).
struct UnixHTTPClient {
    let socketPath: String
    /// Sent as `Accept-Language`: the language of the answer's plain-words fields.
    var language: String? = nil

    struct Response {
        var status: Int
        var body: Data
    }

    enum Failure: Error, CustomStringConvertible {
        case unreachable(String)
        /// connect(2) failed: the daemon is not running there, or this user may not use the socket.
        case cannotConnect(path: String, reason: String, permissionDenied: Bool)
        case protocolError(String)
        case output(String)
        /// The socket could have been put there by someone other than the daemon (SocketTrust).
        case untrustedSocket(String)

        var description: String {
            switch self {
            case .unreachable(let m), .output(let m), .untrustedSocket(let m): m
            case .cannotConnect(let path, _, true):
                "cannot connect to anonregd at \(path): permission denied. This user must be in the socket's group (anonreg-clinic on an installed host)."
            case .cannotConnect(let path, let reason, false):
                "cannot connect to anonregd at \(path): \(reason). Is it running? (set --socket or ANONREG_SOCKET)"
            case .protocolError(let m): "unexpected answer from anonregd: \(m)"
            }
        }
    }

    func send(_ method: String, _ path: String, json: Data? = nil) throws -> Response {
        let fd = try connected()
        defer { close(fd) }
        try writeRequest(fd, method, path, json: json)
        let raw = try readAll(fd)
        return try parse(raw)
    }

    /// Sends a request and, when the answer is 2xx with a Content-Length, streams its body into
    /// `output` (a large body, such as a backup, is never held in memory). Returns the status and
    /// the streamed byte count; any other answer is returned whole, with nothing written.
    ///
    /// `timeout` bounds each wait for the daemon (default 60 s); a backup passes a long one,
    /// since the daemon copies the whole database before its first byte (docs/OPERATIONS.md §Backups).
    func download(_ method: String, _ path: String, to output: Int32, timeout seconds: Int = 60) throws -> (
        response: Response, written: Int64
    ) {
        try startDownload(method, path, timeout: seconds).receive(to: output)
    }

    /// A request sent whose answer is not read yet. The daemon knows the caller by the
    /// credentials of the connection (`SO_PEERCRED`, taken at `connect`), so a process may send
    /// the request as one user and read the answer after it switched to another: root's
    /// `backup scheduled` asks as the admin uid, then writes the backup as the state directory's
    /// owner (docs/OPERATIONS.md §Daily backups).
    struct PendingDownload: ~Copyable {
        let client: UnixHTTPClient
        let fd: Int32
        let seconds: Int

        /// Streams a 2xx answer's body into `output` (see `download`).
        consuming func receive(to output: Int32) throws -> (response: Response, written: Int64) {
            try client.receiveDownload(fd: fd, seconds: seconds, to: output)
        }

        deinit { close(fd) }
    }

    /// Connects and sends the request; the answer is read by `PendingDownload.receive`.
    func startDownload(_ method: String, _ path: String, timeout seconds: Int = 60) throws -> PendingDownload {
        let fd = try connected()
        var handedOver = false
        defer { if !handedOver { close(fd) } }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try writeRequest(fd, method, path, json: nil)
        handedOver = true
        return PendingDownload(client: self, fd: fd, seconds: seconds)
    }

    fileprivate func receiveDownload(fd: Int32, seconds: Int, to output: Int32) throws -> (response: Response, written: Int64) {
        var head = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var headLength: Int?
        while true {
            do { headLength = try HTTPResponseParser.headLength(head) } catch { throw Failure.protocolError(error.reason) }
            if headLength != nil { break }
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw Failure.unreachable("anonregd did not answer within \(seconds) seconds")
            }
            guard n > 0 else { throw Failure.protocolError("connection closed before the answer's header") }
            head.append(buffer, count: n)
        }
        let split = headLength!
        let parsed: HTTPResponseParser.Head
        do { parsed = try HTTPResponseParser.head(head.prefix(split - 4)) } catch { throw Failure.protocolError(error.reason) }
        let status = parsed.status
        guard (200..<300).contains(status), let length = parsed.contentLength else {
            return (try parse(head + (try readAll(fd))), 0)
        }
        var written: Int64 = 0
        var pending = Data(head.dropFirst(split))
        while true {
            if !pending.isEmpty {
                let take = pending.prefix(Int(min(Int64(pending.count), length - written)))
                do { try writeOutput(output, take) } catch {
                    throw Failure.output("cannot write the answer to disk: \(String(cString: strerror(errno)))")
                }
                written += Int64(take.count)
                pending.removeAll(keepingCapacity: true)
            }
            if written >= length { break }
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw Failure.unreachable("anonregd stopped sending for 60 seconds") }
            guard n > 0 else { throw Failure.protocolError("the answer ended after \(written) of \(length) bytes") }
            pending.append(buffer, count: n)
        }
        return (Response(status: status, body: Data()), written)
    }

    private func connected() throws -> Int32 {
        try SocketTrust.check(socketPath)
        let fd: Int32
        do { fd = try UnixSocket.connect(socketPath, timeout: 60) } catch {
            switch error {
            case .connect(let path, let code):
                throw Failure.cannotConnect(path: path, reason: String(cString: strerror(code)), permissionDenied: code == EACCES)
            case .timedOut:
                throw Failure.unreachable("cannot connect to anonregd at \(socketPath): it accepted no connection within 60 seconds")
            default: throw Failure.unreachable("\(error)")
            }
        }
        var handedOver = false
        defer { if !handedOver { close(fd) } }
        try SocketTrust.checkListener(fd: fd, socketPath: socketPath)
        handedOver = true
        return fd
    }

    private func writeRequest(_ fd: Int32, _ method: String, _ path: String, json: Data?) throws {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: anonreg\r\nConnection: close\r\nAccept: application/json\r\n"
        if let language { head += "Accept-Language: \(language)\r\n" }
        if let json {
            head += "Content-Type: application/json\r\nContent-Length: \(json.count)\r\n"
        } else if method == "POST" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        try writeAll(fd, Data(head.utf8) + (json ?? Data()))
    }

    private func writeAll(_ fd: Int32, _ data: Data) throws {
        do { try UnixSocket.writeAll(fd, Array(data)) } catch {
            // UnixSocket's I/O failures already read "write failed: <reason>".
            throw Failure.unreachable(error == .timedOut ? "write failed: anonregd took nothing for 60 seconds" : "\(error)")
        }
    }

    /// Writes a downloaded body to `output`, a file (write(2), not the socket's send).
    private func writeOutput(_ output: Int32, _ data: Data) throws {
        try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var done = 0
            while done < buffer.count {
                let n = write(output, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Failure.output("cannot write the answer to disk: \(String(cString: strerror(errno)))")
                }
                done += n
            }
        }
    }

    private func readAll(_ fd: Int32) throws -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure.unreachable("anonregd did not answer within 60 seconds") }
                throw Failure.unreachable("read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { return data }
            data.append(buffer, count: n)
            guard data.count < 64 << 20 else { throw Failure.protocolError("answer larger than 64 MiB") }
        }
    }

    /// A whole answer, checked by HTTPResponseParser (every answer is untrusted).
    private func parse(_ raw: Data) throws -> Response {
        do {
            let (head, body) = try HTTPResponseParser.parse(raw)
            return Response(status: head.status, body: body)
        } catch {
            throw Failure.protocolError(error.reason)
        }
    }
}
