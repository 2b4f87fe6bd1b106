import Foundation

/// One blocking, keep-alive HTTP/1.1 connection over a Unix socket: what a clinic system with a
/// connection pool does. One per worker thread; requests on it are strictly sequential.
final class UnixHTTPConnection {
    struct Reply {
        var status: Int
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    private let path: String
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []
    private var readBuffer = [UInt8](repeating: 0, count: 64 * 1024)

    init(path: String) throws {
        self.path = path
        try connect()
    }

    deinit { if fd >= 0 { close(fd) } }

    private func connect() throws {
        if fd >= 0 { close(fd) }
        buffer.removeAll(keepingCapacity: true)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchError.io("socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw BenchError.io("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            fd = -1
            throw BenchError.io("connect \(path): errno \(e)")
        }
    }

    /// Sends one request and reads the whole answer (Content-Length or chunked).
    func request(_ method: String, _ target: String, body: [UInt8]? = nil) throws -> Reply {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: anonreg\r\n"
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        var out = Array(head.utf8)
        if let body { out += body }
        try writeAll(out)
        return try readReply()
    }

    func request(_ method: String, _ target: String, json: String) throws -> Reply {
        try request(method, target, body: Array(json.utf8))
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw BenchError.io("send: errno \(errno)")
            }
            done += n
        }
    }

    private func fill() throws {
        while true {
            let n = readBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer += readBuffer[0..<n]
                return
            }
            if n < 0 && errno == EINTR { continue }
            throw BenchError.io(n == 0 ? "connection closed by the daemon" : "recv: errno \(errno)")
        }
    }

    private func readReply() throws -> Reply {
        // Head: up to the blank line.
        var headEnd: Int? = nil
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
            if headEnd == nil { try fill() }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeSubrange(0..<(headEnd! + 4))
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw BenchError.protocolError("bad status line: \(lines.first ?? "")")
        }
        var contentLength: Int? = nil
        var chunked = false
        var closeAfter = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length": contentLength = Int(value)
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            case "connection": closeAfter = value.lowercased() == "close"
            default: break
            }
        }
        var body: [UInt8] = []
        if chunked {
            while true {
                let line = try readLine()
                guard let size = Int(line.split(separator: ";").first.map(String.init) ?? "", radix: 16) else {
                    throw BenchError.protocolError("bad chunk size")
                }
                if size == 0 {
                    _ = try readLine()
                    break
                }
                while buffer.count < size + 2 { try fill() }
                body += buffer[0..<size]
                buffer.removeSubrange(0..<(size + 2))
            }
        } else {
            let length = contentLength ?? 0
            while buffer.count < length { try fill() }
            body = Array(buffer[0..<length])
            buffer.removeSubrange(0..<length)
        }
        if closeAfter { try connect() }
        return Reply(status: status, body: body)
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                buffer.removeSubrange(0...i)
                return line
            }
            try fill()
        }
    }
}

enum BenchError: Error, CustomStringConvertible {
    case io(String)
    case protocolError(String)
    case unexpected(String)

    var description: String {
        switch self {
        case .io(let s): "I/O: \(s)"
        case .protocolError(let s): "HTTP: \(s)"
        case .unexpected(let s): s
        }
    }
}
