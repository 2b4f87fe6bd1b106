import Metrics

/// Request metrics (swift-metrics, emitted by swift-prometheus at `GET /metrics`). Labels are
/// route templates and status codes only: never a case handle, a code or a clinic's data.
extension RegistryApp {
    func record(route: String, status: Int, elapsed: Duration) {
        let dimensions = [("route", route), ("status", String(status))]
        Counter(label: "anonreg_http_requests_total", dimensions: dimensions).increment()
        Timer(label: "anonreg_http_request_duration_seconds", dimensions: [("route", route)], preferredDisplayUnit: .seconds)
            .recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// A storage integrity failure (docs/CRYPTO.md §Authenticated columns): logged at critical
    /// and counted in `anonreg_integrity_failures_total{source}`, `request` for a refused request,
    /// `check` for what the sweeper's integrity check erased or removed. Alert on any increase.
    func integrityFailure(source: String, count: Int = 1, detail: String) {
        guard count > 0 else { return }
        Counter(label: "anonreg_integrity_failures_total", dimensions: [("source", source)]).increment(by: count)
        logger.critical(
            "integrity failure: the database was modified outside anonreg",
            metadata: [
                "source": "\(source)", "count": "\(count)", "detail": "\(detail)",
            ])
    }
}
