import Logging
import RegistryCore
import ServiceLifecycle

/// Runs the sweeper once at start and then every day, until shutdown (docs/OPERATIONS.md
/// §Automatic forgetting). Admins can also run it now: `anonreg sweep` / `POST /v1/admin/sweep`.
public struct SweeperService: Service {
    let sweeper: Sweeper
    let logger: Logger
    let interval: Duration

    public init(app: RegistryApp, interval: Duration = .seconds(24 * 3600)) {
        self.sweeper = app.sweeper
        self.logger = app.logger
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let report = try await sweeper.run()
                logger.notice("daily sweep", metadata: [
                    "reviewed": "\(report.reviewed)", "erased.completed": "\(report.erasedCompleted)",
                    "erased.cap": "\(report.erasedCap)", "erased.inactive": "\(report.erasedInactive)",
                ])
            } catch {
                logger.error("daily sweep failed: \(error)")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
