import Logging
import RegistryCore
import ServiceLifecycle
import Synchronization

/// Whether the storage answers (docs/OPERATIONS.md §PostgreSQL and several nodes, "Outages").
/// A request that finds the database out of reach gets 503 `storage_unavailable` and marks it
/// down here: the daemon logs it once, and `sd_notify` STATUS says what it waits for. The
/// daemon keeps serving (health, metrics, refusals) and its pool reconnects by itself;
/// `StorageHealthService` probes until the database answers again, then logs it and sets STATUS
/// back to `serving`.
public final class StorageHealth: Sendable {
    private let state = Mutex<(down: String?, notifier: SystemdNotifier?)>((nil, nil))

    public init() {}

    /// Lets transitions reach systemd.
    public func attach(_ notifier: SystemdNotifier) { state.withLock { $0.notifier = notifier } }

    /// The reason the storage was last found out of reach, while it is.
    public var downReason: String? { state.withLock { $0.down } }

    /// A request found the storage out of reach. Returns whether this is news.
    @discardableResult
    func markDown(_ reason: String, logger: Logger) -> Bool {
        let (news, notifier) = state.withLock { state -> (Bool, SystemdNotifier?) in
            let news = state.down == nil
            state.down = reason
            return (news, state.notifier)
        }
        if news {
            logger.error(
                "the database cannot be reached; requests get 503 storage_unavailable until it answers", metadata: ["reason": "\(reason)"])
            notifier?.status("waiting for the database: \(reason)")
        }
        return news
    }

    /// The storage answered again.
    func markUp(logger: Logger) {
        let (was, notifier) = state.withLock { state -> (String?, SystemdNotifier?) in
            let was = state.down
            state.down = nil
            return (was, state.notifier)
        }
        if was != nil {
            logger.notice("the database answers again")
            notifier?.status("serving")
        }
    }
}

/// While the storage is down, asks it every `interval` for something small, until it answers.
public struct StorageHealthService: Service {
    let app: RegistryApp
    let interval: Duration

    public init(app: RegistryApp, interval: Duration = .seconds(2)) {
        self.app = app
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            guard app.storageHealth.downReason != nil else { continue }
            do {
                _ = try await app.store.auditUnsignedTail()
                app.storageHealth.markUp(logger: app.logger)
            } catch .unavailable(let reason) {
                app.storageHealth.markDown(reason, logger: app.logger)
            } catch {
                // Answered, if not as hoped: reachable.
                app.storageHealth.markUp(logger: app.logger)
            }
        }
    }
}
