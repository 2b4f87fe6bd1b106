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
}
