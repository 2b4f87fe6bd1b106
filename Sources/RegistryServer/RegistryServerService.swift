import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOExtras
import NIOHTTPTypesHTTP1
import NIOPosix
import RegistryCore
import RegistryProtocol
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// The HTTP/1.1 server on the Unix socket: Hummingbird's HTTP1 channel and router on a NIO
/// bootstrap of our own, because the daemon must (a) check the socket path before binding,
/// (b) adopt an inherited socket under systemd socket activation, and (c) read each
/// connection's peer credentials as it is accepted. Graceful shutdown stops accepting, lets
/// in-flight requests finish, then returns.
public final class RegistryServerService: Service {
    let app: RegistryApp
    let address: ListenAddress
    let notifier: SystemdNotifier
    let group: any EventLoopGroup
    /// Called once the socket accepts connections (after READY=1 was sent).
    let onListening: @Sendable () -> Void

    public init(
        app: RegistryApp, address: ListenAddress, notifier: SystemdNotifier,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, onListening: @escaping @Sendable () -> Void = {}
    ) {
        self.app = app
        self.address = address
        self.notifier = notifier
        self.group = group
        self.onListening = onListening
    }

    public func run() async throws {
        let logger = app.logger
        let responder = app.buildRouter().buildResponder()
        let app = self.app
        let http1 = HTTP1Channel(
            responder: { request, responseWriter, channel in
                let started = ContinuousClock.now
                let peer = app.peers.credentials(of: channel)
                let roles = peer.map { app.access.roles(of: $0) } ?? []
                let guardian = app.guardian(of: channel)
                var response: Response
                var route = "unmatched"
                let spec = RouteTable.match(request.method, request.uri.path)
                if roles.isEmpty {
                    response = JSONBodies.errorResponse(.unknownPeer)
                    await app.auditUnknownPeer(peer)
                } else if spec == nil {
                    let allowed = RouteTable.methods(for: request.uri.path)
                    var answer = JSONBodies.errorResponse(allowed.isEmpty ? .notFound : .methodNotAllowed)
                    if !allowed.isEmpty { answer.headers[.allow] = allowed.joined(separator: ", ") }
                    response = answer
                } else {
                    let context = RegistryRequestContext(source: .init(channel: channel, logger: logger), peer: peer, roles: roles)
                    let recorder = AuditRecorder()
                    let acting = spec.flatMap { $0.access.actingRole(roles) }
                    if let spec, let action = spec.action {
                        let role = acting ?? roles.first
                        recorder.describe(AuditRecorder.Action(actor: role.map(RegistryApp.actorName) ?? "unknown peer", action: action))
                    }
                    var outcome = "ok"
                    if app.space.refuses(action: spec?.action) {
                        // Storage-full mode: the write is refused before it reaches SQLite, and
                        // not audited (it touched no registry data), so that the room the reserve
                        // freed stays for the audit entries of reads.
                        response = JSONBodies.errorResponse(.storageFullMode)
                        outcome = "refused_storage_full"
                    } else if let spec, let kind = spec.budget, spec.access.admits(roles), case .clinic(let clinic)? = acting,
                        case let decision = app.budgets.limiter(kind).decide(clinic), !decision.allowed
                    {
                        // Over the clinic's budget (`[limits]`): refused before the body is read.
                        Counter(label: "anonreg_budget_refused_total", dimensions: [("kind", kind.rawValue)]).increment()
                        response = JSONBodies.errorResponse(.rateLimited(retryAfter: decision.retryAfterSeconds))
                        response.headers[.retryAfter] = String(decision.retryAfterSeconds)
                        outcome = "rate_limited"
                    } else {
                        do {
                            response = try await RequestLane.$current.withValue(RegistryApp.lane(roles, acting: acting)) {
                                try await AuditRecorder.$current.withValue(recorder) {
                                    try await responder.respond(to: request, context: context)
                                }
                            }
                        } catch let error as HTTPError where error.status == .notFound {
                            response = JSONBodies.errorResponse(.notFound)
                            outcome = "not_found"
                        } catch let error as HTTPError where error.status == .methodNotAllowed {
                            response = JSONBodies.errorResponse(.methodNotAllowed)
                            outcome = "method_not_allowed"
                        } catch let error as APIError.RetryLater {
                            response = JSONBodies.errorResponse(error.error)
                            response.headers[.retryAfter] = String(error.seconds)
                            outcome = error.error.code
                        } catch {
                            let mapped = APIError.from(error)
                            if mapped.code == DomainError.integrityErrorCode {
                                app.integrityFailure(
                                    source: "request", detail: "\(request.method) \(spec?.path ?? "?"): \(APIError.diagnostic(error))")
                            } else if mapped.status == .internalServerError {
                                logger.error(
                                    "request failed",
                                    metadata: [
                                        "error.type": "\(String(reflecting: type(of: error)))",
                                        "error.detail": "\(APIError.diagnostic(error))",
                                    ])
                            }
                            response = JSONBodies.errorResponse(mapped)
                            outcome = mapped.code
                        }
                    }
                    // A request whose deadline passed or that the parser refused never reached
                    // registry data: the connection handlers logged it, and it is not audited.
                    if guardian?.abandoned == true || outcome == APIError.requestAbandoned.code {
                        if guardian?.abandoned != true {
                            app.record(route: spec?.path ?? "unmatched", status: 408, elapsed: ContinuousClock.now - started)
                            app.logRefusal(
                                peer: peer, roles: roles, method: "\(request.method)", route: spec?.path ?? "unmatched", status: 408,
                                reason: "the body ended before it was complete")
                        }
                        try? await responseWriter.write(response: response.head, body: response.body)
                        return
                    }
                    // Every request that reads or changes registry data is audited before it
                    // is answered; if the entry cannot be written, the answer is an error. A
                    // successful write has already appended its entry in its own transaction.
                    // Refusals that name no subject are summarised (RefusalSummaries).
                    if outcome != "refused_storage_full", !(outcome == "ok" && recorder.appendedWithEffect),
                        let event = recorder.event(result: outcome)
                    {
                        do { try await app.appendAudit(event, refused: outcome != "ok") } catch {
                            logger.error("audit entry not written: \(error)")
                            response = JSONBodies.errorResponse(
                                (error as? StorageError) == .storageFull
                                    ? APIError(
                                        HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), "storage_full",
                                        "the audit log could not be written; the request's effect, if any, stands but is unacknowledged")
                                    : APIError(.internalServerError, "audit_failed", "the audit log could not be written"))
                        }
                    }
                    route = spec?.path ?? "unmatched"
                    // Any answer that says the disk is full (a write, or a read's audit entry)
                    // puts the daemon in storage-full mode, which releases the space reserve.
                    if response.status.code == 507, outcome != "refused_storage_full" { app.space.storageFullObserved() }
                }
                let elapsed = ContinuousClock.now - started
                app.record(route: route, status: response.status.code, elapsed: elapsed)
                // Access log: route template (never the case handle in the path), status, peer.
                // Refusals and unknown peers are summarised per (uid, route, status).
                if response.status.code >= 400 || roles.isEmpty {
                    app.logRefusal(
                        peer: peer, roles: roles, method: "\(request.method)", route: route, status: response.status.code, elapsed: elapsed)
                } else {
                    logger.info(
                        "\(request.method) \(route) \(response.status.code)",
                        metadata: [
                            "peer.pid": "\(peer?.pid ?? -1)", "peer.uid": "\(peer?.uid ?? UInt32.max)",
                            "roles": "\(roles.map(\.description).joined(separator: ", "))",
                            "ms": "\(RegistryApp.milliseconds(elapsed))",
                        ])
                }
                try await responseWriter.write(response: response.head, body: response.body)
            },
            configuration: .init(
                idleTimeout: .seconds(120),
                httpDecoderConfiguration: .init(maxHeaderFieldSize: 8 * 1024, maxHeaderListSize: 16 * 1024, maxHeaderFieldCount: 64)))

        let quiesce = ServerQuiescingHelper(group: group)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)

        let peers = app.peers
        // Each connection: credentials, then the caps (a connection over one is closed here),
        // the request deadline, HTTP/1.1, and the handler that ends deadlines and answers
        // parser refusals with a JSON body (RegistryApp+Limits.swift).
        let childInit: @Sendable (any Channel) -> EventLoopFuture<HTTP1Channel.Value> = { channel in
            peers.register(channel)
                .flatMap { app.admit(channel, request: app.config.limits.requestSeconds) }
                .flatMap { http1.setup(channel: channel, logger: logger) }
                .flatMapThrowing { value in
                    if let parts = app.partsHandler(for: channel) {
                        let codec = try channel.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self)
                        try channel.pipeline.syncOperations.addHandler(parts, position: .after(codec))
                    }
                    return value
                }
        }
        let server: NIOAsyncChannel<HTTP1Channel.Value, Never>
        switch address {
        case .path(let path, let mode):
            try SocketPathGuard.prepare(path)
            // The socket is created with the umask's mode; 0117 gives 0660 with no window in
            // which it is wider. The daemon's own umask (0077) is restored right after.
            let previous = umask(0o117)
            do {
                server = try await bootstrap.bind(
                    unixDomainSocketPath: path, cleanupExistingSocketFile: false, childChannelInitializer: childInit)
            } catch {
                umask(previous)
                throw error
            }
            umask(previous)
            guard chmod(path, mode_t(mode)) == 0 else { throw ListenError.io(path: path, operation: "chmod", errno: errno) }
            logger.notice("listening", metadata: ["socket": "\(path)", "mode": "\(String(mode, radix: 8))"])
        case .inherited(let fd):
            // systemd made the socket; its directory must still be one nobody else can write.
            if let path = SocketPathGuard.boundPath(fd: fd) { try SocketPathGuard.checkDirectories(of: path) }
            server = try await bootstrap.bind(fd, cleanupExistingSocketFile: false, childChannelInitializer: childInit)
            logger.notice("listening on the socket passed by systemd", metadata: ["fd": "\(fd)"])
        }
        notifier.ready()
        onListening()

        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { tasks in
                do {
                    try await server.executeThenClose { inbound in
                        for try await child in inbound {
                            tasks.addTask { await http1.handle(value: child, logger: logger) }
                        }
                    }
                } catch {
                    logger.error("accept loop ended: \(error)")
                }
            }
        } onGracefulShutdown: {
            logger.notice("shutting down: draining in-flight requests")
            self.notifier.stopping()
            quiesce.initiateShutdown(promise: nil)
        }
        if case .path(let path, _) = address { unlink(path) }
        logger.notice("server stopped")
    }
}

/// Sends WATCHDOG=1 at half of `$WATCHDOG_USEC` until shutdown.
public struct WatchdogService: Service {
    let notifier: SystemdNotifier

    public init(notifier: SystemdNotifier) { self.notifier = notifier }

    public func run() async throws {
        guard let interval = notifier.watchdogInterval else {
            try? await gracefulShutdown()
            return
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            notifier.watchdog()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
