import Foundation
import Logging
import ServiceLifecycle

/// Signs the head of the audit log every `audit.checkpoint_minutes` (entries also get a
/// checkpoint every `audit.checkpoint_every`, and the daemon signs once more on shutdown), and
/// prunes entries past `audit.retention_days` down to a signed checkpoint.
public struct AuditCheckpointService: Service {
    let app: RegistryApp

    public init(app: RegistryApp) { self.app = app }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let audit = app.config.audit
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(60 * audit.checkpointMinutes)) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            do {
                if await app.store.retryPendingErasureCleanup() {
                    app.logger.error("erased data may still be in the WAL: truncation keeps failing (a long-running reader?)")
                }
                // One daemon of a registry at a time (docs/STORAGE.md §Single-runner jobs).
                let store = app.store
                let logger = app.logger
                _ = try await store.runIfDue(.auditCheckpoint, every: .zero) {
                    if let seq = try await store.checkpointAudit() {
                        logger.info("audit checkpoint", metadata: ["seq": "\(seq)"])
                    }
                    if audit.retentionDays > 0 {
                        let cutoff = Date().addingTimeInterval(-Double(audit.retentionDays) * 86400)
                        let formatter = ISO8601DateFormatter()
                        formatter.timeZone = TimeZone(identifier: "UTC")
                        let removed = try await store.pruneAudit(olderThan: formatter.string(from: cutoff))
                        if removed > 0 { logger.notice("audit entries pruned", metadata: ["removed": "\(removed)"]) }
                    }
                }
            } catch {
                app.logger.error("audit checkpoint failed: \(error)")
            }
        }
    }
}
