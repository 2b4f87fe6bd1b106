import Foundation
import Testing

@testable import RegistryStats

@Suite struct GeometricNoiseTests {
    @Test func epsilonIsKeptAsAReducedFraction() {
        let noise = GeometricNoise(epsilonMicro: 500_000)
        #expect(noise.numerator == 1 && noise.denominator == 2)
        let other = GeometricNoise(epsilonMicro: 1_250_000)
        #expect(other.numerator == 5 && other.denominator == 4)
    }

    /// P(Z = z) = (1 − α)/(1 + α) · α^|z|, α = e^(−ε): the empirical frequencies of 40 000 draws
    /// (fixed seed, so the test is reproducible) must be within five standard errors.
    @Test(arguments: [1_000_000, 500_000, 2_000_000])
    func samplesFollowTheTwoSidedGeometricDistribution(epsilonMicro: Int) throws {
        let epsilon = Double(epsilonMicro) / 1_000_000
        let alpha = exp(-epsilon)
        let noise = GeometricNoise(epsilonMicro: epsilonMicro)
        var random = SplitMix(seed: UInt64(epsilonMicro))
        let n = 40_000
        var counts: [Int: Int] = [:]
        var sum = 0
        for _ in 0..<n {
            let z = try noise.sample(&random)
            counts[z, default: 0] += 1
            sum += z
        }
        for z in -3...3 {
            let p = (1 - alpha) / (1 + alpha) * pow(alpha, Double(abs(z)))
            let observed = Double(counts[z] ?? 0) / Double(n)
            let se = (p * (1 - p) / Double(n)).squareRoot()
            #expect(abs(observed - p) < 5 * se, "P(Z=\(z)): observed \(observed), expected \(p)")
        }
        // Symmetric: the mean is near 0 (variance 2α/(1−α)²).
        let sd = (2 * alpha).squareRoot() / (1 - alpha)
        #expect(abs(Double(sum) / Double(n)) < 5 * sd / Double(n).squareRoot())
    }

    @Test func randomnessIsOnlyDrawnFromTheSource() throws {
        // The same source sequence gives the same noise: nothing else feeds the sampler.
        var a = SplitMix(seed: 99)
        var b = SplitMix(seed: 99)
        let noise = GeometricNoise(epsilonMicro: 300_000)
        let first = try (0..<100).map { _ in try noise.sample(&a) }
        let second = try (0..<100).map { _ in try noise.sample(&b) }
        #expect(first == second)
        #expect(Set(first).count > 5)
    }

    /// Counts the draws a sample asks its source for (what its running time follows).
    struct Counted: UniformSource {
        var base: SplitMix
        var calls = 0
        mutating func uniform(below bound: UInt32) throws -> UInt32 {
            calls += 1
            return try base.uniform(below: bound)
        }
    }

    /// Issue 21 §3, timing of the noise: the bare algorithm's draw count grows with |Z|, so an
    /// observer timing a release learns |Z|; the sampler the daemon uses takes the same number
    /// of draws whatever Z is.
    @Test(arguments: [10_000, 500_000, 1_000_000, 10_000_000])
    func theDrawCountDoesNotDependOnTheNoise(epsilonMicro: Int) throws {
        let noise = GeometricNoise(epsilonMicro: epsilonMicro)
        var bare: [(magnitude: Int, calls: Int)] = []
        var padded = Set<Int>()
        var source = Counted(base: SplitMix(seed: UInt64(epsilonMicro)))
        for _ in 0..<4_000 {
            source.calls = 0
            let z = try noise.sampleWithoutPadding(&source)
            bare.append((abs(z), source.calls))
            source.calls = 0
            _ = try noise.sample(&source)
            padded.insert(source.calls)
        }
        #expect(padded == [GeometricNoise.drawsPerSample], "draws per sample: \(padded.sorted())")
        // The leak the padding closes: samples with larger noise took more draws.
        let median = bare.map(\.magnitude).sorted()[bare.count / 2]
        func meanCalls(_ rows: [(magnitude: Int, calls: Int)]) -> Double {
            Double(rows.map(\.calls).reduce(0, +)) / Double(max(rows.count, 1))
        }
        let large = meanCalls(bare.filter { $0.magnitude > median })
        let small = meanCalls(bare.filter { $0.magnitude <= median })
        #expect(large > small * 1.2, "bare sampler: \(large) draws above the median |Z|, \(small) at or below")
    }
}
