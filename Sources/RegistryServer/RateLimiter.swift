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

    /// Takes one token for `clinic`; false when the bucket is empty.
    func allow(_ clinic: ClinicID) -> Bool {
        let t = now()
        return buckets.withLock { buckets in
            var bucket = buckets[clinic] ?? Bucket(tokens: burst, updated: t)
            bucket.tokens = min(burst, bucket.tokens + (t - bucket.updated) * perSecond)
            bucket.updated = t
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            buckets[clinic] = bucket
            return allowed
        }
    }
}
