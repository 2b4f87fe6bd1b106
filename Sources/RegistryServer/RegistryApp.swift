import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import RegistryConfig
import RegistryCore
import RegistryKeyring
import Synchronization

/// Everything a request handler needs, built once at start.
public final class RegistryApp: Sendable {
    public static let maxBodyBytes = 64 * 1024

    /// The storage backend, through the contract alone (RegistryCore/Storage): the server never
    /// names a backend (docs/STORAGE.md §The storage contract).
    let store: any RegistryBackend
    /// The live keyring: the daemon's, lent to the backend (`KeyCustody`).
    let keys: KeyCustody
    let clock: any DayClock
    let metrics: PrometheusCollectorRegistry
    let logger: Logger
    let peers = PeerCredentialsTable()
    /// Connection caps, request deadlines and refusal summaries (RegistryApp+Limits.swift).
    let limits: LimitsState
    /// The space reserve and storage-full mode (docs/ROBUSTNESS.md §Disk full).
    public let space: SpaceReserve
    /// Whether the database answers (StorageHealth.swift).
    public let storageHealth = StorageHealth()
    /// Serialises key lifecycle changes made through admin routes.
    let keyChanges = Mutex<Void>(())
    /// One database backup at a time (docs/OPERATIONS.md §Backups): true while one is prepared or sent.
    let backupRunning = Mutex<Bool>(false)
    /// What the configuration decides; replaced as a whole on SIGHUP.
    private let settings: Mutex<Settings>

    /// Everything derived from one version of anonreg.toml.
    struct Settings: Sendable {
        let config: DaemonConfig
        let monitoring: MonitoringService
        let sweeper: Sweeper
        let access: AccessControl
        let rateLimiter: RateLimiter
        /// Per-clinic data read and write budgets (`[limits]`).
        let budgets: ClinicBudgets
    }

    public init(
        config: DaemonConfig, store: any RegistryBackend, keys: KeyCustody, clock: any DayClock, metrics: PrometheusCollectorRegistry,
        logger: Logger, space: SpaceReserve? = nil
    ) {
        self.store = store
        self.keys = keys
        self.space = space ?? .disabled(logger: logger)
        self.clock = clock
        self.metrics = metrics
        self.logger = logger
        self.limits = LimitsState(config.limits)
        self.settings = Mutex(Self.settings(config, store: store, clock: clock))
    }

    static func settings(
        _ config: DaemonConfig, store: any RegistryBackend, clock: any DayClock, rateLimiter: RateLimiter? = nil,
        budgets: ClinicBudgets? = nil
    ) -> Settings {
        Settings(
            config: config, monitoring: MonitoringService(storage: store, rules: config.rules, clock: clock),
            sweeper: Sweeper(storage: store, rules: config.rules, clock: clock), access: AccessControl(config: config),
            rateLimiter: rateLimiter ?? RateLimiter(perMinute: config.rateLimits.oprfPerMinute, burst: config.rateLimits.oprfBurst),
            budgets: budgets ?? ClinicBudgets(config.limits))
    }

    /// Appends a `policy` audit entry when the policies in force differ from the last recorded
    /// ones (first start, a config change applied by restart or SIGHUP).
    public func recordPolicyIfChanged(actor: String) async {
        let summary = config.rules.policySummary
        do {
            if try await store.lastAuditResult(action: "policy") != summary {
                try await store.appendAudit(AuditEvent(actor: actor, action: "policy", result: summary, subjectReference: nil))
                logger.notice("policies recorded in the audit log")
            }
        } catch {
            logger.error("could not record the policies in the audit log: \(error)")
        }
    }

    var current: Settings { settings.withLock { $0 } }
    var config: DaemonConfig { current.config }
    var monitoring: MonitoringService { current.monitoring }
    var sweeper: Sweeper { current.sweeper }
    var access: AccessControl { current.access }
    var rateLimiter: RateLimiter { current.rateLimiter }
    var budgets: ClinicBudgets { current.budgets }

    /// Applies a reloaded configuration: clinics, roles, rate limits, categories, vocabularies,
    /// statistics and retention. The [daemon] settings and audit.checkpoint_every need a restart.
    /// Logs every change (DaemonConfig.changes), so the journal says what a reload did.
    public func reload(_ config: DaemonConfig) {
        let changes = current.config.changes(to: config)
        settings.withLock { settings in
            let limiter = settings.rateLimiter.reconfigured(perMinute: config.rateLimits.oprfPerMinute, burst: config.rateLimits.oprfBurst)
            let budgets = ClinicBudgets(config.limits, previous: settings.budgets)
            settings = Self.settings(config, store: store, clock: clock, rateLimiter: limiter, budgets: budgets)
        }
        limits.connections.reconfigure(limits.caps(config.limits))
        for change in changes {
            if change.needsRestart {
                logger.warning("configuration reload: \(change)")
            } else {
                logger.notice("configuration reload: \(change)")
            }
        }
        logger.notice(
            "configuration reloaded",
            metadata: [
                "path": "\(config.path)", "changes": "\(changes.count)", "clinics": "\(config.clinics.count)",
            ])
    }
}
