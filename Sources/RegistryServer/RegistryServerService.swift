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
        let app = self.app
        let peers = app.peers
        let pipeline = RequestPipeline(app: app) { channel in peers.credentials(of: channel) }
        let http1 = HTTP1Channel(
            responder: { request, responseWriter, channel in
                let answer = await pipeline.answer(request, channel: channel)
                if answer.abandoned {
                    try? await responseWriter.write(response: answer.response.head, body: answer.response.body)
                    return
                }
                try await responseWriter.write(response: answer.response.head, body: answer.response.body)
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
