import Foundation

/// Parses anonregd's HTTP/1.1 answers for every socket client (UnixHTTP). Every answer is untrusted
/// (a clinic may reach the daemon through a forwarded socket, or something else may sit at the
/// socket's path): a malformed one is refused with `HTTPResponseParser.Failure`, never a trap.
/// Sizes are checked before any arithmetic on them: a negative or huge Content-Length or chunk
/// size, a body shorter than announced, a missing CRLF after a chunk, a status outside
/// 100–599, duplicate disagreeing Content-Lengths, or a head over 1 MiB are all refused.
/// `make fuzz` fuzzes it (fuzz-response).
public enum HTTPResponseParser {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public struct Head: Equatable, Sendable {
        public var status: Int
        /// Header names lower-cased; a repeated header keeps its first value.
        public var headers: [String: String]
        /// The announced body length (nil when chunked or not given).
        public var contentLength: Int64?
        public var chunked: Bool
    }

    /// The most a head may take, and the most a whole body may.
    public static let maxHead = 1 << 20
    public static let maxBody = 64 << 20

    static let headEnd = Data("\r\n\r\n".utf8)
    static let crlf = Data("\r\n".utf8)

    /// The offset just after the head's blank line, or nil when it has not arrived yet (an error
    /// when `data` is already larger than a head may be).
    public static func headLength(_ data: Data) throws(Failure) -> Int? {
        guard let end = data.range(of: headEnd) else {
            if data.count > maxHead { throw Failure(reason: "header larger than 1 MiB") }
            return nil
        }
        let length = end.upperBound - data.startIndex
        if length > maxHead { throw Failure(reason: "header larger than 1 MiB") }
        return length
    }

    /// Parses a head (status line and header fields, without the blank line).
    public static func head(_ bytes: Data) throws(Failure) -> Head {
        guard bytes.count <= maxHead else { throw Failure(reason: "header larger than 1 MiB") }
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].utf8.count == 3,
            parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let status = Int(parts[1]), (100...599).contains(status)
        else {
            throw Failure(reason: "bad status line")
        }
        var headers: [String: String] = [:]
        var contentLength: Int64?
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw Failure(reason: "a header line without a colon") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" {
                guard !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int64(value)
                else {
                    throw Failure(reason: "bad Content-Length")
                }
                if let contentLength, contentLength != n { throw Failure(reason: "two different Content-Lengths") }
                contentLength = n
            }
            if headers[name] == nil { headers[name] = value }
        }
        let chunked = headers["transfer-encoding"]?.lowercased().contains("chunked") == true
        if chunked, contentLength != nil { throw Failure(reason: "both Content-Length and chunked") }
        return Head(status: status, headers: headers, contentLength: chunked ? nil : contentLength, chunked: chunked)
    }

    /// Parses a whole answer (the connection was closed after it): status and body.
    public static func parse(_ raw: Data) throws(Failure) -> (head: Head, body: Data) {
        guard let length = try headLength(raw) else { throw Failure(reason: "no header end") }
        let start = raw.startIndex
        let head = try head(raw[start..<(start + length - headEnd.count)])
        let rest = raw[(start + length)...]
        if head.chunked { return (head, try dechunk(rest)) }
        if let announced = head.contentLength {
            guard announced <= Int64(maxBody) else { throw Failure(reason: "body larger than 64 MiB") }
            guard rest.count >= Int(announced) else { throw Failure(reason: "the answer ended after \(rest.count) of \(announced) bytes") }
            return (head, Data(rest.prefix(Int(announced))))
        }
        guard rest.count <= maxBody else { throw Failure(reason: "body larger than 64 MiB") }
        return (head, Data(rest))
    }

    /// Decodes a chunked body (RFC 9112 §7.1). Trailer fields are ignored.
    public static func dechunk(_ data: Data) throws(Failure) -> Data {
        var out = Data()
        var rest = data[...]
        while true {
            guard let lineEnd = rest.range(of: crlf) else { throw Failure(reason: "bad chunk") }
            let sizeText =
                String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self)
                .split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first?.trimmingCharacters(in: .whitespaces) ?? ""
            guard !sizeText.isEmpty, sizeText.utf8.count <= 8, sizeText.utf8.allSatisfy({ isHexDigit($0) }),
                let size = Int(sizeText, radix: 16)
            else {
                throw Failure(reason: "bad chunk size")
            }
            rest = rest[lineEnd.upperBound...]
            if size == 0 { return out }
            guard size <= maxBody - out.count else { throw Failure(reason: "body larger than 64 MiB") }
            guard rest.count >= size, rest.count - size >= 2 else { throw Failure(reason: "short chunk") }
            let chunkEnd = rest.index(rest.startIndex, offsetBy: size)
            guard rest[chunkEnd..<rest.index(chunkEnd, offsetBy: 2)].elementsEqual(crlf) else {
                throw Failure(reason: "a chunk without its CRLF")
            }
            out.append(rest[rest.startIndex..<chunkEnd])
            rest = rest[rest.index(chunkEnd, offsetBy: 2)...]
        }
    }

    static func isHexDigit(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66) }
}
