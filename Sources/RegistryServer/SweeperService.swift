import Logging
import RegistryCore
import ServiceLifecycle

/// Runs the sweeper once at start and then every day, until shutdown (docs/OPERATIONS.md
/// §Automatic forgetting). Admins can also run it now: `anonreg sweep` / `POST /v1/admin/sweep`.
/// After each sweep it runs the monitoring summaries' backfill (docs/STORAGE.md §Summary), which
/// does nothing once every subject has one.
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
            await backfillSummaries()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// The online migration of `v5-sealed-summary`: subjects without a summary get one, in
    /// batches, while requests are served. Logged when it did anything.
    func backfillSummaries() async {
        let logger = app.logger
        do {
            // A first run after the upgrade may take long: a shutdown stops it between batches.
            let store = app.store
            let report = try await cancelWhenGracefulShutdown { try await SummaryBackfill(storage: store).run() }
            if report.built > 0 || report.failed > 0 {
                logger.notice(
                    "monitoring summary backfill done",
                    metadata: ["built": "\(report.built)", "failed": "\(report.failed)", "raced": "\(report.raced)"])
            }
        } catch {
            logger.error("monitoring summary backfill failed: \(error); it resumes at the next sweep")
        }
    }
}
