import Foundation
import UnixHTTP

/// The bench's side of UnixHTTP's connection (one keep-alive connection per worker, what a
/// clinic system with a connection pool does): connected before the clock starts, JSON bodies.
extension UnixHTTPConnection {
    /// `timeout` (seconds) bounds each read and write: the request path's default, or longer for
    /// an admin call that may work for minutes before it answers (a rewrap batch at scale).
    static func connected(_ path: String, timeout: Int = 60) throws -> UnixHTTPConnection {
        let connection = UnixHTTPConnection(path: path, timeout: timeout)
        try connection.open()
        return connection
    }

    func send(_ method: String, _ target: String, body: [UInt8]? = nil) throws -> Reply {
        try request(method, target, headers: body == nil ? [] : [("Content-Type", "application/json")], body: body)
    }

    func send(_ method: String, _ target: String, json: String) throws -> Reply {
        try send(method, target, body: Array(json.utf8))
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
