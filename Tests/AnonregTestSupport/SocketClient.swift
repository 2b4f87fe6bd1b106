import Foundation
import UnixHTTP

/// A keep-alive HTTP/1.1 client over the daemon's Unix socket, for tests that send thousands of
/// requests (curl per request would dominate their run time): UnixHTTP's connection, the one
/// every anonreg client is built on. One connection; not thread-safe: give each concurrent
/// worker its own. A request that met a connection the daemon closed while it was idle is sent
/// again once, under UnixHTTPConnection's rule (never a POST the daemon may have read).
public final class SocketClient {
    public let socketPath: String
    private let connection: UnixHTTPConnection

    public init(socket: String) {
        socketPath = socket
        connection = UnixHTTPConnection(path: socket)
    }

    /// One request; returns the status and the body as text.
    public func request(_ method: String, _ path: String, body: String? = nil) throws -> DaemonHarness.Reply {
        let reply = try connection.request(
            method, path, headers: body == nil ? [] : [("Content-Type", "application/json")], body: body.map { Array($0.utf8) },
            retryOnStaleConnection: true)
        ResponseLog.record(method: method, target: path, status: reply.status, body: reply.text, client: "keep-alive")
        return DaemonHarness.Reply(status: reply.status, body: reply.text)
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
