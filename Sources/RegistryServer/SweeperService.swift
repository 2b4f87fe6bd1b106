import Logging
import RegistryCore
import ServiceLifecycle

/// Runs the sweeper once at start and then every day, until shutdown (docs/OPERATIONS.md
/// §Automatic forgetting). Admins can also run it now: `anonreg sweep` / `POST /v1/admin/sweep`.
/// After each sweep it runs the monitoring summaries' backfill (docs/STORAGE.md §Summary), which
/// does nothing once every subject has one.
///
/// With several daemons on one registry, the sweep is a single-runner job (docs/STORAGE.md
/// §Single-runner jobs): every daemon asks every minute whether it is due, and one at a time
/// runs it, once a day for the whole registry; if the daemon that runs it dies, another takes it
/// over at its next minute.
public struct SweeperService: Service {
    let app: RegistryApp
    let interval: Duration
    /// How often this daemon asks whether the sweep is due.
    let poll: Duration

    public init(app: RegistryApp, interval: Duration = .seconds(24 * 3600), poll: Duration = .seconds(60)) {
        self.app = app
        self.interval = interval
        self.poll = min(poll, interval)
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let service = self
                let ran = try await app.store.runIfDue(.sweep, every: interval) {
                    // The sweeper of the current configuration (retention may change on SIGHUP).
                    do { service.log(try await service.app.sweep()) } catch {
                        service.app.logger.error("daily sweep failed: \(error)")
                    }
                    await service.backfillSummaries()
                }
                // Another node of the registry swept (PostgreSQL): the gauge shows when.
                if ran == nil, let finished = try await app.store.lastFinished(.sweep) { app.recordSweepFinished(at: finished) }
            } catch {
                app.logger.error("could not tell whether the daily sweep is due: \(error)")
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: poll) }
        }
    }

    func log(_ report: Sweeper.Report) {
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
