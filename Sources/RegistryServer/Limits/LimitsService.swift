internal import CAnonregLinux
import Foundation
import Logging
import Metrics
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Writes refusal summaries when their interval ends (RefusalSummaries), and at shutdown; and
/// gives memory back to the system after a connection flood (docs/ROBUSTNESS.md §Resource limits).
public struct LimitsService: Service {
    let app: RegistryApp

    public init(app: RegistryApp) { self.app = app }

    public func run() async throws {
        var tick = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
            await app.flushRefusalSummaries()
            tick += 1
            if tick % 10 == 0 { app.trimAfterFlood() }
        }
        await app.flushRefusalSummaries(all: true)
    }
}

extension RegistryApp {
    /// Connections this many above what is open now, since the last look, count as a flood.
    static let floodConnections = 256

    /// After a flood of connections has closed, returns the freed heap to the system
    /// (`malloc_trim`): glibc keeps it otherwise, and RSS would stay at the flood's peak.
    func trimAfterFlood() {
        let peak = limits.connections.takePeak()
        let open = limits.connections.openConnections
        guard peak - open >= Self.floodConnections else { return }
        let before = Self.residentBytes()
        _ = anonreg_malloc_trim()
        let after = Self.residentBytes()
        Gauge(label: "anonreg_resident_bytes").record(after ?? 0)
        logger.notice(
            "memory returned after a connection flood",
            metadata: [
                "peak_connections": "\(peak)", "open_connections": "\(open)",
                "rss_before_kib": "\((before ?? 0) / 1024)", "rss_after_kib": "\((after ?? 0) / 1024)",
            ])
    }

    /// The process's resident set (`/proc/self/statm`), in bytes.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
