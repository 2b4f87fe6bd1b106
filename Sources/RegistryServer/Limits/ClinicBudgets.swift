import RegistryConfig
import RegistryCore

/// The per-clinic budgets of data writes and data reads (`[limits]`, docs/ROBUSTNESS.md
/// §Resource limits). A request over its clinic's budget is answered `429 rate_limited` with
/// `Retry-After` before its body is read, counted in `/metrics` and audited like any refusal
/// (RefusalSummaries bounds the entries).
struct ClinicBudgets: Sendable {
    let writes: RateLimiter
    let reads: RateLimiter

    init(_ limits: DaemonConfig.Limits, previous: ClinicBudgets? = nil) {
        let writeOverrides = limits.clinics.mapValues { RateLimiter.Rate(perMinute: $0.writesPerMinute, burst: $0.writeBurst) }
        let readOverrides = limits.clinics.mapValues { RateLimiter.Rate(perMinute: $0.readsPerMinute, burst: $0.readBurst) }
        if let previous {
            writes = previous.writes.reconfigured(
                perMinute: limits.budget.writesPerMinute, burst: limits.budget.writeBurst, overrides: writeOverrides)
            reads = previous.reads.reconfigured(
                perMinute: limits.budget.readsPerMinute, burst: limits.budget.readBurst, overrides: readOverrides)
        } else {
            writes = RateLimiter(perMinute: limits.budget.writesPerMinute, burst: limits.budget.writeBurst, overrides: writeOverrides)
            reads = RateLimiter(perMinute: limits.budget.readsPerMinute, burst: limits.budget.readBurst, overrides: readOverrides)
        }
    }

    func limiter(_ kind: RouteSpec.Budget) -> RateLimiter {
        switch kind {
        case .write: writes
        case .read: reads
        }
    }
}

extension RouteSpec {
    /// Which clinic budget a route draws on; nil for routes no clinic budget covers (health,
    /// OPRF with its own `[rate_limits]`, admin and statistics routes).
    enum Budget: String, Sendable {
        case write, read
    }

    var budget: Budget? {
        switch action {
        case "enrol", "link", "add-checkup", "reissue-code", "withdraw", "withdraw-by-code", "anonymous-episode": .write
        case "read-status", "read-checkups", "self-access", "read-due-list": .read
        default: nil
        }
    }
}
