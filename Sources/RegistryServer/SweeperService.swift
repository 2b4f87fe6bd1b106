import Logging
import RegistryCore
import ServiceLifecycle

/// Runs the sweeper once at start and then every day, until shutdown (docs/OPERATIONS.md
/// §Automatic forgetting). Admins can also run it now: `anonreg sweep` / `POST /v1/admin/sweep`.
public struct SweeperService: Service {
    let app: RegistryApp
    let interval: Duration

    public init(app: RegistryApp, interval: Duration = .seconds(24 * 3600)) {
        self.app = app
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                // The sweeper of the current configuration (retention may change on SIGHUP).
                let report = try await app.sweep()
                app.recordSweep(failed: report.failed)
                app.logger.notice(
                    "daily sweep",
                    metadata: [
                        "reviewed": "\(report.reviewed)", "erased.completed": "\(report.erasedCompleted)",
                        "erased.cap": "\(report.erasedCap)", "erased.inactive": "\(report.erasedInactive)",
                        "erased.integrity": "\(report.erasedIntegrity)", "case_links.removed": "\(report.caseLinksRemoved)",
                        "failed": "\(report.failed)",
                    ])
                if report.failed > 0 {
                    app.logger.error(
                        "\(report.failed) subject(s) could not be reviewed (unreadable records or a missing KEK); run `anonreg audit verify` and check the keyring"
                    )
                }
            } catch {
                app.logger.error("daily sweep failed: \(error)")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
