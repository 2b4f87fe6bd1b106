internal import CSodium

extension Sodium {
    /// A uniformly distributed integer in `0 ..< upperBound` from libsodium's CSPRNG
    /// (`randombytes_uniform`, which rejects the biased tail itself, so there is no modulo bias).
    /// The statistics' noise (docs/CRYPTO.md §Differential privacy) draws all its randomness here.
    public static func uniform(below upperBound: UInt32) throws(CryptoError) -> UInt32 {
        guard upperBound >= 1 else { throw .invalidLength(what: "uniform upper bound", expected: 1, actual: 0) }
        try ensureInitialized()
        return randombytes_uniform(upperBound)
    }
}
