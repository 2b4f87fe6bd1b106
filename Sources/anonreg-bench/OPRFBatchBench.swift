import Foundation

/// Batched OPRF over the socket (issue 18): batches of 1, 10 and 100 elements at each
/// concurrency. A figure counts requests; its evaluations per second are requests × batch size,
/// compared in `SocketBench.evaluate` with the raw all-core BlindEvaluate limit of the same run.
extension SocketBench {
    static func oprfBatchRequest(_ workload: Workload, size: Int) -> BenchRequest {
        let start = workload.nextIndex() &* size
        let elements = (0..<size).map { "\"\(workload.blindedHex[(start &+ $0) % workload.blindedHex.count])\"" }
        return BenchRequest(
            method: "POST", target: "/v1/oprf/evaluate",
            body: Array("{\"blindedElements\":[\(elements.joined(separator: ","))]}".utf8))
    }

    static func batchSize(of op: String) -> Int? {
        op.hasPrefix("oprf-batch-") ? Int(op.dropFirst("oprf-batch-".count)) : nil
    }

    func oprfBatchPhases(socket: String, workload: Workload) throws -> [Figure] {
        var figures: [Figure] = []
        for size in oprfBatches {
            for n in connections {
                let m = try LoadRunner.run(socket: socket, connections: n, seconds: seconds) { _ in
                    ("oprf-batch-\(size)", Self.oprfBatchRequest(workload, size: size))
                }
                let requests = m.seconds > 0 ? Double(m.total.totalCount) / m.seconds : 0
                let f = Figure(
                    op: "oprf-batch-\(size)", side: "socket", concurrency: n, histogram: m.total,
                    errors: m.errors.values.reduce(0, +), seconds: m.seconds,
                    note: "\(size) element\(size == 1 ? "" : "s") per request: \(ResultsWriter.rate(requests * Double(size))) evaluations/s"
                )
                report(f, m.firstError)
                figures.append(f)
            }
        }
        return figures
    }

    /// Evaluations per second of each batch size (its best concurrency) against the raw all-core
    /// BlindEvaluate limit measured in the same run.
    static func evaluateOPRFBatches(_ figures: [Figure], limit: Figure?, cores: Int) -> ([Ratio], [TargetResult]) {
        guard let limit, limit.perSecond > 0 else { return ([], []) }
        var ratios: [Ratio] = []
        var targets: [TargetResult] = []
        let sizes = Set(figures.compactMap { batchSize(of: $0.op) }).sorted()
        for size in sizes {
            guard let best = figures.filter({ batchSize(of: $0.op) == size }).max(by: { $0.perSecond < $1.perSecond }) else { continue }
            let evaluations = best.perSecond * Double(size)
            let r = Ratio(
                op: "oprf-batch-\(size) (evaluations/s)", socketPerSecond: evaluations, socketConcurrency: best.concurrency,
                limit: "BlindEvaluate on \(cores) threads", limitPerSecond: limit.perSecond, ratio: evaluations / limit.perSecond)
            ratios.append(r)
            if size == 100 {
                targets.append(
                    TargetResult(
                        target: "batched OPRF (100 per request) over the socket >= 70% of the raw all-core scalar multiplication",
                        measured: String(format: "%.0f%%", r.ratio * 100), met: r.ratio >= 0.7))
            }
        }
        return (ratios, targets)
    }
}
