import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RegistryCore

/// Requests answered without a socket, through the daemon's own RequestPipeline: the same roles,
/// route table, storage-full mode, budgets, handlers, error mapping, audit entries, metrics and
/// access log as a request on the socket. The caller states the roles instead of a peer's
/// credentials. Used by the request fuzzer (docs/ROBUSTNESS.md); the daemon never uses it.
public struct InProcessResponder: Sendable {
    let pipeline: RequestPipeline
    let channel: any Channel

    /// `channel` stands in for the connection (e.g. NIOEmbedded's `EmbeddedChannel`).
    public init(app: RegistryApp, channel: any Channel) {
        self.pipeline = RequestPipeline(app: app) { _ in nil }
        self.channel = channel
    }

    /// Routes a raw request target (path and query) and body as `roles`; returns the status and
    /// the body of the answer, error answers included.
    public func respond(
        method: HTTPRequest.Method, target: String, body: [UInt8]?,
        contentType: String? = "application/json", roles: [Role]
    ) async -> (status: Int, body: [UInt8]) {
        var head = HTTPRequest(method: method, scheme: nil, authority: "anonreg", path: target)
        if let contentType { head.headerFields[.contentType] = contentType }
        if let body { head.headerFields[.contentLength] = String(body.count) }
        let request = Request(head: head, body: .init(buffer: ByteBuffer(bytes: body ?? [])))
        let response = await pipeline.answer(request, channel: channel, peer: nil, roles: roles).response
        var bytes: [UInt8] = []
        do {
            try await response.body.write(CollectingWriter { bytes += $0.readableBytesView })
        } catch {
            return (Int(response.status.code), Array("unreadable body".utf8))
        }
        return (Int(response.status.code), bytes)
    }
}

/// Collects a response body in memory.
struct CollectingWriter: ResponseBodyWriter {
    let append: (ByteBuffer) -> Void
    init(_ append: @escaping (ByteBuffer) -> Void) { self.append = append }
    mutating func write(_ buffer: ByteBuffer) async throws { append(buffer) }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
