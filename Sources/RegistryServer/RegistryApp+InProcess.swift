import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import RegistryCore

/// Requests answered without a socket: the same route-table lookup, access rule, handler and
/// single error mapping (`APIError.from`) as `RegistryServerService`, for the request fuzzer
/// (docs/ROBUSTNESS.md) and in-process measurements. It writes no audit entry and reads no peer
/// credentials: the caller states the roles. The daemon never uses it.
public struct InProcessResponder: Sendable {
    let app: RegistryApp
    let responder: RouterResponder<RegistryRequestContext>
    let channel: any Channel

    /// `channel` stands in for the connection (e.g. NIOEmbedded's `EmbeddedChannel`).
    public init(app: RegistryApp, channel: any Channel) {
        self.app = app
        self.responder = app.buildRouter().buildResponder()
        self.channel = channel
    }

    /// Routes a raw request target (path and query) and body as `roles`; returns the status and
    /// the body of the answer, error answers included.
    public func respond(
        method: HTTPRequest.Method, target: String, body: [UInt8]?,
        contentType: String? = "application/json", roles: [Role]
    ) async -> (status: Int, body: [UInt8]) {
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        var response: Response
        if roles.isEmpty {
            response = JSONBodies.errorResponse(.unknownPeer)
        } else if RouteTable.match(method, path) == nil {
            response = JSONBodies.errorResponse(RouteTable.methods(for: path).isEmpty ? .notFound : .methodNotAllowed)
        } else {
            var head = HTTPRequest(method: method, scheme: nil, authority: "anonreg", path: target)
            if let contentType { head.headerFields[.contentType] = contentType }
            if let body { head.headerFields[.contentLength] = String(body.count) }
            let request = Request(head: head, body: .init(buffer: ByteBuffer(bytes: body ?? [])))
            let context = RegistryRequestContext(source: .init(channel: channel, logger: app.logger), peer: nil, roles: roles)
            do {
                response = try await AuditRecorder.$current.withValue(AuditRecorder()) {
                    try await responder.respond(to: request, context: context)
                }
            } catch let error as HTTPError where error.status == .notFound {
                response = JSONBodies.errorResponse(.notFound)
            } catch let error as HTTPError where error.status == .methodNotAllowed {
                response = JSONBodies.errorResponse(.methodNotAllowed)
            } catch {
                response = JSONBodies.errorResponse(APIError.from(error))
            }
        }
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
