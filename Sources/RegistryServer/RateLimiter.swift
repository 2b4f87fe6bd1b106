import Foundation
import RegistryCore
import Synchronization

/// Per-clinic token buckets for OPRF evaluation (config `[rate_limits]`). Each clinic starts
/// with a full bucket of `burst` tokens, refilled continuously at `perMinute`.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Double
    }

    private let perSecond: Double
    private let burst: Double
    private let buckets = Mutex<[ClinicID: Bucket]>([:])
    private let now: @Sendable () -> Double

    init(perMinute: Int, burst: Int, now: @escaping @Sendable () -> Double = { ProcessInfo.processInfo.systemUptime }) {
        self.perSecond = Double(perMinute) / 60
        self.burst = Double(burst)
        self.now = now
    }

    /// A limiter with new limits that keeps every clinic's bucket as it is now (capped at the
    /// new burst), so that reloading the configuration does not hand out fresh tokens.
    func reconfigured(perMinute: Int, burst: Int) -> RateLimiter {
        let next = RateLimiter(perMinute: perMinute, burst: burst, now: now)
        let t = now()
        let snapshot = buckets.withLock { $0 }
        next.buckets.withLock { buckets in
            for (clinic, bucket) in snapshot {
                let tokens = min(self.burst, bucket.tokens + (t - bucket.updated) * perSecond)
                buckets[clinic] = Bucket(tokens: min(next.burst, tokens), updated: t)
            }
        }
        return next
    }

    /// The most tokens one call can ever take (the bucket's size).
    var capacity: Int { Int(burst) }

    /// Takes one token for `clinic`; false when the bucket is empty.
    func allow(_ clinic: ClinicID) -> Bool { allow(clinic, cost: 1) }

    /// Takes `cost` tokens for `clinic` at once, or none: false when fewer are left.
    func allow(_ clinic: ClinicID, cost: Int) -> Bool {
        guard cost > 0 else { return true }
        let t = now()
        return buckets.withLock { buckets in
            var bucket = buckets[clinic] ?? Bucket(tokens: burst, updated: t)
            bucket.tokens = min(burst, bucket.tokens + (t - bucket.updated) * perSecond)
            bucket.updated = t
            let allowed = bucket.tokens >= Double(cost)
            if allowed { bucket.tokens -= Double(cost) }
            buckets[clinic] = bucket
            return allowed
        }
    }
}
