/// Uniform random integers: the only randomness the noise uses. The daemon supplies libsodium's
/// `randombytes_uniform` (RegistryCrypto `Sodium.uniform(below:)`); tests supply a fixed
/// sequence.
public protocol UniformSource {
    /// A uniform integer in `0 ..< bound` (`bound ≥ 1`).
    mutating func uniform(below bound: UInt32) throws -> UInt32
}

public enum NoiseError: Error, Equatable, Sendable {
    /// An intermediate bound outgrew 32 bits (after more than 4000 successive draws of one
    /// Bernoulli trial: probability far below 2⁻¹⁰⁰⁰). The release is refused, never biased.
    case boundOverflow
}

/// The two-sided geometric mechanism (Ghosh, Roughgarden and Sundararajan 2009) for ε = n/d:
/// adds Z with P(Z = z) ∝ α^|z|, α = e^(−ε), to a count. Sampled exactly, with integers only,
/// by the discrete Laplace algorithm of Canonne, Kamath and Steinke ("The Discrete Gaussian for
/// Differential Privacy", 2020, Algorithms 1 and 2): no floating point, so no rounding bias.
/// docs/CRYPTO.md §Differential privacy.
public struct GeometricNoise {
    /// ε = numerator / denominator.
    public let numerator: UInt32
    public let denominator: UInt32

    /// ε given in millionths (the configuration's unit), reduced.
    public init(epsilonMicro: Int) {
        precondition(epsilonMicro >= 1 && epsilonMicro <= 1_000_000_000, "ε in millionths, 1 … 10⁹")
        var n = epsilonMicro
        var d = 1_000_000
        var a = n
        var b = d
        while b != 0 { (a, b) = (b, a % b) }
        n /= a
        d /= a
        numerator = UInt32(n)
        denominator = UInt32(d)
    }

    /// Uniform draws every sample takes (docs/CRYPTO.md §Differential privacy, noise timing).
    /// The exact sampler below uses more draws the larger |Z| is (its inner loop counts up to
    /// |Z|·ε), so its running time told |Z| to anyone who could time a release. Each sample is
    /// therefore padded with unused draws up to this many, and takes the same number of draws
    /// whatever it returns. It is exceeded with probability below 2⁻⁶⁰ per sample for every ε the
    /// configuration allows (0.01 … 10; measured by `anonreg-bench noise`), and then the sample
    /// simply takes longer: never a biased or refused value.
    public static let drawsPerSample = 512

    /// One sample of Z, in a fixed number of draws (`drawsPerSample`).
    public func sample(_ random: inout some UniformSource) throws -> Int {
        var counted = CountingSource(base: random)
        defer { random = counted.base }
        let z = try sampleWithoutPadding(&counted)
        let bound = max(2, UInt32(denominator))
        while counted.draws < Self.drawsPerSample {
            _ = try counted.uniform(below: bound)
        }
        return z
    }

    /// One sample of Z with as many draws as the algorithm needs: for measurements only
    /// (`anonreg-bench noise` compares it with `sample`). Its running time depends on |Z|.
    public func sampleWithoutPadding(_ random: inout some UniformSource) throws -> Int {
        // Algorithm 2 with scale t/s = 1/ε = d/n: s = n, t = d.
        let s = UInt64(numerator)
        let t = UInt64(denominator)
        while true {
            let u = UInt64(try random.uniform(below: UInt32(t)))
            guard try Self.bernoulliExp(numerator: u, denominator: t, &random) else { continue }
            var v: UInt64 = 0
            while try Self.bernoulliExp(numerator: 1, denominator: 1, &random) { v += 1 }
            let x = u + t * v
            let y = x / s
            let negative = try random.uniform(below: 2) == 1
            if negative && y == 0 { continue }
            return negative ? -Int(y) : Int(y)
        }
    }

    /// Bernoulli(exp(−γ)) for γ = numerator/denominator ≥ 0 (Algorithm 1).
    static func bernoulliExp(numerator: UInt64, denominator: UInt64, _ random: inout some UniformSource) throws -> Bool {
        var n = numerator
        while n > denominator {
            // exp(−γ) = exp(−1) · exp(−(γ − 1)).
            guard try bernoulliExpAtMostOne(numerator: 1, denominator: 1, &random) else { return false }
            n -= denominator
        }
        return try bernoulliExpAtMostOne(numerator: n, denominator: denominator, &random)
    }

    /// Bernoulli(exp(−γ)) for γ ∈ [0, 1]: draw A_k ~ Bernoulli(γ/k) for k = 1, 2, … until one is
    /// 0; the result is 1 when that k is odd.
    static func bernoulliExpAtMostOne(numerator: UInt64, denominator: UInt64, _ random: inout some UniformSource) throws -> Bool {
        var k: UInt64 = 1
        while true {
            let bound = denominator * k
            guard bound <= UInt64(UInt32.max) else { throw NoiseError.boundOverflow }
            // Bernoulli(γ/k) = [uniform(d·k) < n].
            if UInt64(try random.uniform(below: UInt32(bound))) >= numerator { return k % 2 == 1 }
            k += 1
        }
    }
}

/// Counts the draws a sample takes, and makes each cost one real draw: a bound of 1 (which the
/// algorithm asks for, e.g. Bernoulli(e⁻¹) at γ = 1/1) needs no randomness and libsodium answers
/// it at once, so a sample with many of them would finish sooner; here it draws from {0, 1} and
/// still answers 0.
struct CountingSource<Base: UniformSource>: UniformSource {
    var base: Base
    var draws = 0

    mutating func uniform(below bound: UInt32) throws -> UInt32 {
        draws += 1
        if bound < 2 {
            _ = try base.uniform(below: 2)
            return 0
        }
        return try base.uniform(below: bound)
    }
}
