import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryStats

/// `anonreg-bench noise` (issue 21 §3, timing of the noise): does the geometric sampler's running
/// time depend on the noise it draws? N draws with the daemon's own randomness (libsodium's
/// `randombytes_uniform`), each timed, grouped by |noise|: first the bare algorithm
/// (`sampleWithoutPadding`, the sampler before the fix), then the padded one the daemon uses
/// (`sample`), in the same run. Figures only; nothing is asserted.
struct NoiseBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "noise", abstract: "Time the geometric noise sampler against |noise| (docs/CRYPTO.md §Differential privacy).")

    @Option(help: "Draws per sampler and ε.") var draws = 100_000
    @Option(help: "ε values in millionths.") var epsilonMicro: [Int] = [500_000, 100_000, 2_000_000]

    struct Counting: UniformSource {
        var calls = 0
        mutating func uniform(below bound: UInt32) throws -> UInt32 {
            calls += 1
            return try Sodium.uniform(below: bound)
        }
    }

    /// |noise| groups: 0, 1, 2, 3–4, 5–9, 10 and more.
    static let buckets: [(String, ClosedRange<Int>)] = [
        ("0", 0...0), ("1", 1...1), ("2", 2...2), ("3-4", 3...4), ("5-9", 5...9), ("10+", 10...Int.max),
    ]

    struct Row {
        var count = 0
        var nanoseconds = 0.0
        var calls = 0
    }

    func measure(_ noise: GeometricNoise, padded: Bool) throws -> (rows: [Row], spearman: Double) {
        var rows = [Row](repeating: Row(), count: Self.buckets.count)
        var pairs: [(Int, Double)] = []
        pairs.reserveCapacity(draws)
        for _ in 0..<draws {
            var source = Counting()
            let start = DispatchTime.now().uptimeNanoseconds
            let z = padded ? try noise.sample(&source) : try noise.sampleWithoutPadding(&source)
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
            let magnitude = abs(z)
            let index = Self.buckets.firstIndex { $0.1.contains(magnitude) }!
            rows[index].count += 1
            rows[index].nanoseconds += elapsed
            rows[index].calls += source.calls
            pairs.append((magnitude, elapsed))
        }
        return (rows, Self.spearman(pairs))
    }

    /// Rank correlation of |noise| and time (ties get their average rank).
    static func spearman(_ pairs: [(Int, Double)]) -> Double {
        func ranks(_ values: [Double]) -> [Double] {
            let order = values.indices.sorted { values[$0] < values[$1] }
            var out = [Double](repeating: 0, count: values.count)
            var i = 0
            while i < order.count {
                var j = i
                while j + 1 < order.count && values[order[j + 1]] == values[order[i]] { j += 1 }
                for k in i...j { out[order[k]] = Double(i + j) / 2 }
                i = j + 1
            }
            return out
        }
        let a = ranks(pairs.map { Double($0.0) })
        let b = ranks(pairs.map(\.1))
        let n = Double(pairs.count)
        let ma = a.reduce(0, +) / n
        let mb = b.reduce(0, +) / n
        var cov = 0.0
        var va = 0.0
        var vb = 0.0
        for i in a.indices {
            cov += (a[i] - ma) * (b[i] - mb)
            va += (a[i] - ma) * (a[i] - ma)
            vb += (b[i] - mb) * (b[i] - mb)
        }
        return cov / (va * vb).squareRoot()
    }

    func run() throws {
        print(
            "anonreg-bench noise: \(draws) draws per sampler and ε, libsodium randombytes_uniform; \(GeometricNoise.drawsPerSample) draws per padded sample"
        )
        for micro in epsilonMicro {
            let noise = GeometricNoise(epsilonMicro: micro)
            let bare = try measure(noise, padded: false)
            let padded = try measure(noise, padded: true)
            print("\nε = \(Double(micro) / 1_000_000)")
            print("|noise|  samples  bare ns  bare draws  padded ns  padded draws  padded/bare")
            for (i, bucket) in Self.buckets.enumerated() where bare.rows[i].count > 0 || padded.rows[i].count > 0 {
                let b = bare.rows[i]
                let p = padded.rows[i]
                let bns = b.count > 0 ? b.nanoseconds / Double(b.count) : .nan
                let pns = p.count > 0 ? p.nanoseconds / Double(p.count) : .nan
                let bdraws = b.count > 0 ? Double(b.calls) / Double(b.count) : .nan
                let pdraws = p.count > 0 ? Double(p.calls) / Double(p.count) : .nan
                print(
                    String(
                        format: "%-7@  %7d  %7.0f  %10.1f  %9.0f  %12.1f  %11.1f", bucket.0 as NSString, b.count, bns, bdraws, pns, pdraws,
                        pns / bns))
            }
            // Time of the largest-noise group over the zero-noise group: 1.0 means no signal.
            func spread(_ rows: [Row]) -> Double {
                let used = rows.filter { $0.count >= 100 }
                guard let first = used.first, let last = used.last else { return .nan }
                return (last.nanoseconds / Double(last.count)) / (first.nanoseconds / Double(first.count))
            }
            print(
                String(
                    format:
                        "rank correlation |noise|~time: bare %.3f, padded %.3f; slowest/fastest |noise| group (≥100 samples): bare %.2f×, padded %.2f×",
                    bare.spearman, padded.spearman, spread(bare.rows), spread(padded.rows)))
        }
    }
}
