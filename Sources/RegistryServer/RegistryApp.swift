import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryStore
import Synchronization

/// Everything a request handler needs, built once at start.
public final class RegistryApp: Sendable {
    public static let maxBodyBytes = 64 * 1024

    let config: DaemonConfig
    let store: SQLiteRegistryStore
    let monitoring: MonitoringService
    let sweeper: Sweeper
    let access: AccessControl
    let rateLimiter: RateLimiter
    let metrics: PrometheusCollectorRegistry
    let logger: Logger
    let peers = PeerCredentialsTable()
    /// Serialises key lifecycle changes made through admin routes.
    let keyChanges = Mutex<Void>(())

    public init(config: DaemonConfig, store: SQLiteRegistryStore, clock: any DayClock, metrics: PrometheusCollectorRegistry, logger: Logger) {
        self.config = config
        self.store = store
        self.monitoring = MonitoringService(storage: store, rules: config.rules, clock: clock)
        self.sweeper = Sweeper(storage: store, rules: config.rules, clock: clock)
        self.access = AccessControl(config: config)
        self.rateLimiter = RateLimiter(perMinute: config.rateLimits.oprfPerMinute, burst: config.rateLimits.oprfBurst)
        self.metrics = metrics
        self.logger = logger
    }
}
