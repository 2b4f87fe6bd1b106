import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import RegistryProtocol
import Synchronization

/// One connection's request in progress, shared by the two handlers below and the responder.
///
/// A request has `limits.request_seconds` from its first byte to the end of its body, however the
/// bytes are spread (docs/PROTOCOL.md §1). Every byte resets the idle timer; nothing resets this
/// deadline. When it passes before the body is complete, the connection is answered
/// `408 request_timeout` (unless an answer had already begun) and closed. Such an abandoned
/// request is logged as a 408 and is not audited: it never reached registry data.
final class RequestGuard: Sendable {
    private struct State {
        var receiving = false
        var responseStarted = false
        var route = "unmatched"
        var timer: Scheduled<Void>?
    }

    private let state = Mutex(State())
    private let expired = Atomic<Bool>(false)
    private let parseFailed = Atomic<Bool>(false)

    /// Whether the deadline passed or the request could not be parsed: the responder then
    /// neither audits nor logs it (the handlers did).
    var abandoned: Bool { expired.load(ordering: .relaxed) || parseFailed.load(ordering: .relaxed) }
    var timedOut: Bool { expired.load(ordering: .relaxed) }

    fileprivate func firstByte(_ schedule: () -> Scheduled<Void>) {
        state.withLock { s in
            guard !s.receiving else { return }
            s.receiving = true
            s.responseStarted = false
            s.route = "unmatched"
            s.timer = schedule()
        }
    }

    fileprivate func head(route: String) { state.withLock { $0.route = route } }

    fileprivate func received() {
        state.withLock { s in
            s.receiving = false
            s.timer?.cancel()
            s.timer = nil
        }
    }

    fileprivate func answering() { state.withLock { if $0.receiving { $0.responseStarted = true } } }

    /// Marks the deadline passed; whether an answer may still be written, and the route.
    fileprivate func expire() -> (answer: Bool, route: String)? {
        state.withLock { s in
            guard s.receiving else { return nil }
            s.receiving = false
            s.timer = nil
            expired.store(true, ordering: .relaxed)
            return (!s.responseStarted, s.route)
        }
    }

    fileprivate func parseFailure() -> (answer: Bool, route: String) {
        state.withLock { s in
            parseFailed.store(true, ordering: .relaxed)
            s.timer?.cancel()
            s.timer = nil
            let answer = !s.responseStarted
            s.receiving = false
            return (answer, s.route)
        }
    }

    fileprivate func closed() {
        state.withLock { s in
            s.timer?.cancel()
            s.timer = nil
        }
    }
}

/// What the handlers report, for the access log and `/metrics`.
struct RequestGuardEvents: Sendable {
    /// A request's deadline passed (route template, whether a 408 was written).
    var timedOut: @Sendable (_ channel: any Channel, _ route: String) -> Void
    /// A request could not be parsed (route template if its head was read, the parser's reason).
    var parseFailed: @Sendable (_ channel: any Channel, _ route: String, _ reason: String) -> Void
}

/// First in the pipeline: sees raw bytes. Starts a request's deadline at its first byte and
/// notes when an answer begins.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    let guardian: RequestGuard
    let seconds: Int64
    let events: RequestGuardEvents

    init(guardian: RequestGuard, seconds: Int, events: RequestGuardEvents) {
        self.guardian = guardian
        self.seconds = Int64(seconds)
        self.events = events
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let loop = context.eventLoop
        // The answer is written from this handler's place in the pipeline (raw bytes, below the
        // HTTP encoder), on the event loop the context belongs to.
        let bound = NIOLoopBound(context, eventLoop: loop)
        let guardian = self.guardian
        let events = self.events
        let seconds = self.seconds
        // After the deadline the connection is only closing: what else comes is dropped.
        if guardian.timedOut { return }
        guardian.firstByte {
            loop.scheduleTask(in: .seconds(seconds)) {
                guard let (answer, route) = guardian.expire() else { return }
                let context = bound.value
                let channel = context.channel
                events.timedOut(channel, route)
                guard answer else {
                    context.close(promise: nil)
                    return
                }
                let body = RequestLimitAnswers.body(
                    code: "request_timeout", message: "the request was not received within \(seconds) seconds")
                var buffer = context.channel.allocator.buffer(capacity: 256)
                buffer.writeString(
                    "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                        + "Connection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
                context.writeAndFlush(NIOAny(IOData.byteBuffer(buffer))).whenComplete { _ in
                    // Half-close first, so that the peer reads the answer even if its unread
                    // bytes would make a full close reset the connection.
                    channel.close(mode: .output, promise: nil)
                    channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
                }
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guardian.answering()
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        guardian.closed()
        context.fireChannelInactive()
    }
}

/// After the HTTP codec: ends the deadline when a request's body is complete, remembers its
/// route template, and answers a request the parser refused with the same JSON error body and
/// log line as any other refusal (Hummingbird's own answer has no body and no log line).
final class RequestPartsHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let guardian: RequestGuard
    let events: RequestGuardEvents

    init(guardian: RequestGuard, events: RequestGuardEvents) {
        self.guardian = guardian
        self.events = events
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guardian.head(
                route: RouteTable.match(head.method, head.path.map { String($0.split(separator: "?", maxSplits: 1).first ?? "") } ?? "")?
                    .path ?? "unmatched")
        case .body:
            break
        case .end:
            guardian.received()
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let (answer, route) = guardian.parseFailure()
        let reason = RequestLimitAnswers.reason(parserError)
        events.parseFailed(context.channel, route, reason)
        guard answer else {
            context.close(promise: nil)
            return
        }
        let (status, code) = RequestLimitAnswers.status(parserError)
        let body = RequestLimitAnswers.body(code: code, message: reason)
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.cacheControl] = "no-store"
        fields[.connection] = "close"
        fields[.contentLength] = String(buffer.readableBytes)
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(buffer)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(mode: .output, promise: nil)
            channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
        }
    }
}

/// The bodies and codes of the answers the connection handlers write themselves.
enum RequestLimitAnswers {
    static func body(code: String, message: String) -> String {
        let data = (try? JSONBodies.encoder.encode(ErrorBody(code: code, message: message))) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// A fixed text per parser error: never the bytes that failed.
    static func reason(_ error: HTTPParserError) -> String {
        switch error {
        case .headerOverflow: "the request's headers are larger than allowed (docs/PROTOCOL.md §1)"
        case .invalidVersion: "not an HTTP/1.1 request"
        case .invalidMethod, .unknown: "the request line is malformed"
        case .invalidURL: "the request target is malformed"
        case .invalidContentLength, .unexpectedContentLength: "the Content-Length header is malformed"
        case .invalidChunkSize, .invalidEOFState: "the chunked body is malformed"
        default: "the request is not valid HTTP/1.1"
        }
    }

    static func status(_ error: HTTPParserError) -> (HTTPResponse.Status, String) {
        switch error {
        case .headerOverflow: (.requestHeaderFieldsTooLarge, "headers_too_large")
        default: (.badRequest, "malformed_request")
        }
    }
}
