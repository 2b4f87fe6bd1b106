import Foundation
import RegistryCore
import Synchronization

/// Per-clinic token buckets: OPRF evaluations (config `[rate_limits]`) and the data read and
/// write budgets (config `[limits]`, docs/ROBUSTNESS.md §Resource limits). Each clinic starts
/// with a full bucket of `burst` tokens, refilled continuously at `perMinute`; a clinic may have
/// a rate of its own (`[limits.clinics.ID]`).
final class RateLimiter: Sendable {
    struct Rate: Sendable, Equatable {
        var perMinute: Int
        var burst: Int
        var perSecond: Double { Double(perMinute) / 60 }
    }

    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    /// The answer to a request for tokens: allowed, or how long until enough have refilled.
    struct Decision: Sendable, Equatable {
        var allowed: Bool
        /// Whole seconds until the request would be allowed (`Retry-After`); 0 when allowed.
        var retryAfterSeconds: Int
    }

    private let rate: Rate
    private let overrides: [ClinicID: Rate]
    private let buckets = Mutex<[ClinicID: Bucket]>([:])
    private let now: @Sendable () -> Double

    init(
        perMinute: Int, burst: Int, overrides: [ClinicID: Rate] = [:],
        now: @escaping @Sendable () -> Double = { ProcessInfo.processInfo.systemUptime }
    ) {
        self.rate = Rate(perMinute: perMinute, burst: burst)
        self.overrides = overrides
        self.now = now
    }

    private func rate(_ clinic: ClinicID) -> Rate { overrides[clinic] ?? rate }

    /// The most tokens one call can ever take (the bucket's size, without per-clinic overrides).
    var capacity: Int { rate.burst }

    /// A limiter with new limits that keeps every clinic's bucket as it is now (capped at the
    /// new burst), so that reloading the configuration does not hand out fresh tokens.
    func reconfigured(perMinute: Int, burst: Int, overrides: [ClinicID: Rate] = [:]) -> RateLimiter {
        let next = RateLimiter(perMinute: perMinute, burst: burst, overrides: overrides, now: now)
        let t = now()
        let snapshot = buckets.withLock { $0 }
        next.buckets.withLock { buckets in
            for (clinic, bucket) in snapshot {
                let old = rate(clinic)
                let tokens = min(Double(old.burst), bucket.tokens + (t - bucket.updated) * old.perSecond)
                buckets[clinic] = Bucket(tokens: min(Double(next.rate(clinic).burst), tokens), updated: t)
            }
        }
        return next
    }

    /// Takes `cost` tokens for `clinic`; false when the bucket holds fewer.
    func allow(_ clinic: ClinicID, cost: Int = 1) -> Bool { decide(clinic, cost: cost).allowed }

    /// Takes `cost` tokens for `clinic` if it has them; otherwise takes none and says when it
    /// will. A cost above the burst can never be met and is refused with the time to a full bucket.
    func decide(_ clinic: ClinicID, cost: Int = 1) -> Decision {
        let t = now()
        let rate = rate(clinic)
        let burst = Double(rate.burst)
        let need = Double(max(0, cost))
        return buckets.withLock { buckets in
            var bucket = buckets[clinic] ?? Bucket(tokens: burst, updated: t)
            bucket.tokens = min(burst, bucket.tokens + (t - bucket.updated) * rate.perSecond)
            bucket.updated = t
            defer { buckets[clinic] = bucket }
            if bucket.tokens >= need {
                bucket.tokens -= need
                return Decision(allowed: true, retryAfterSeconds: 0)
            }
            let missing = min(need, burst) - bucket.tokens
            return Decision(allowed: false, retryAfterSeconds: max(1, Int((missing / rate.perSecond).rounded(.up))))
        }
    }
}
