import Foundation
import UnixHTTP

/// A blocking HTTP/1.1 client over a Unix socket for load and fault tests: one request per
/// connection (`Connection: close`) on UnixHTTP's connection, no process spawn per request, so
/// several threads can keep a daemon busy. A request counts as answered only when the whole
/// response was read.
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

    /// One request on a connection of its own, closed after the answer was read whole.
    public func send(_ method: String, _ path: String, body: String? = nil) throws -> Answer {
        let connection = UnixHTTPConnection(path: socketPath, timeout: 30)
        defer { connection.disconnect() }
        var headers = [("Connection", "close")]
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let reply = try connection.request(method, path, headers: headers, body: Array((body ?? "").utf8))
        let answer = Answer(status: reply.status, body: reply.text)
        ResponseLog.record(method: method, target: path, status: answer.status, body: answer.body, client: "one-shot")
        return answer
    }
}
