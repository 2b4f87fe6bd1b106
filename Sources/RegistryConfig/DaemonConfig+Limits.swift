// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The TOML file shapes decode by property name, so they keep the file's snake_case keys.

import RegistryCore

/// `[limits]`: what one peer may take of the daemon (DESIGN invariant 9; docs/ROBUSTNESS.md
/// §Resource limits). Every key has a default, so a configuration without the section gets
/// the documented bounds.
extension DaemonConfig {
    public struct Limits: Sendable, Equatable {
        /// Open connections, all peers together. The daemon lowers it at start to what
        /// `RLIMIT_NOFILE` allows after `fdReserve`.
        public var maxConnections: Int
        /// Open connections of one uid.
        public var maxConnectionsPerPeer: Int
        /// Open connections of all peers with no role (they are answered `403 unknown_peer`).
        public var maxUnknownConnections: Int
        /// File descriptors kept free of connections: database, WAL, keyring, ledger, backups,
        /// the runtime's own.
        public var fdReserve: Int
        /// Seconds from the first byte of a request to the end of its body.
        public var requestSeconds: Int
        /// Seconds over which repeated refusals become one audit entry and one log line.
        public var refusalSummarySeconds: Int
        /// Per-clinic budgets; `clinics` overrides them for one clinic.
        public var budget: Budget
        public var clinics: [ClinicID: Budget]

        /// Token buckets of one clinic: data writes and data reads, refilled per minute.
        public struct Budget: Sendable, Equatable {
            public var writesPerMinute: Int
            public var writeBurst: Int
            public var readsPerMinute: Int
            public var readBurst: Int

            public init(writesPerMinute: Int, writeBurst: Int, readsPerMinute: Int, readBurst: Int) {
                self.writesPerMinute = writesPerMinute
                self.writeBurst = writeBurst
                self.readsPerMinute = readsPerMinute
                self.readBurst = readBurst
            }

            public static let defaults = Budget(writesPerMinute: 1200, writeBurst: 300, readsPerMinute: 3000, readBurst: 600)
        }

        public static let defaults = Limits(
            maxConnections: 1024, maxConnectionsPerPeer: 64, maxUnknownConnections: 16, fdReserve: 256,
            requestSeconds: 30, refusalSummarySeconds: 60, budget: .defaults, clinics: [:])

        /// The budget in force for `clinic`.
        public func budget(for clinic: ClinicID) -> Budget { clinics[clinic] ?? budget }
    }
}

/// The TOML shape of `[limits]` and `[limits.clinics.ID]`.
struct LimitsFile: Decodable {
    struct BudgetFile: Decodable {
        var writes_per_minute: Int?
        var write_burst: Int?
        var reads_per_minute: Int?
        var read_burst: Int?
    }

    var max_connections: Int?
    var max_connections_per_peer: Int?
    var max_unknown_connections: Int?
    var fd_reserve: Int?
    var request_seconds: Int?
    var refusal_summary_seconds: Int?
    var writes_per_minute: Int?
    var write_burst: Int?
    var reads_per_minute: Int?
    var read_burst: Int?
    var clinics: [String: BudgetFile]?

    func validated(path: String, clinics known: [DaemonConfig.Clinic]) throws(ConfigError) -> DaemonConfig.Limits {
        func bad(_ reason: String) -> ConfigError { .invalid(path: path, reason: reason) }
        let d = DaemonConfig.Limits.defaults
        func value(_ v: Int?, _ fallback: Int, _ name: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
            let v = v ?? fallback
            guard range.contains(v) else { throw bad("\(name) must be \(range.lowerBound) to \(range.upperBound)") }
            return v
        }
        let total = try value(max_connections, d.maxConnections, "limits.max_connections", 1...1_000_000)
        let perPeer = try value(max_connections_per_peer, d.maxConnectionsPerPeer, "limits.max_connections_per_peer", 1...1_000_000)
        let unknown = try value(max_unknown_connections, d.maxUnknownConnections, "limits.max_unknown_connections", 0...1_000_000)
        guard perPeer <= total else { throw bad("limits.max_connections_per_peer must not be larger than limits.max_connections") }
        let reserve = try value(fd_reserve, d.fdReserve, "limits.fd_reserve", 64...1_000_000)
        let seconds = try value(request_seconds, d.requestSeconds, "limits.request_seconds", 1...3600)
        let summary = try value(refusal_summary_seconds, d.refusalSummarySeconds, "limits.refusal_summary_seconds", 1...3600)
        func budget(_ b: BudgetFile?, _ fallback: DaemonConfig.Limits.Budget, _ prefix: String) throws(ConfigError)
            -> DaemonConfig.Limits.Budget
        {
            DaemonConfig.Limits.Budget(
                writesPerMinute: try value(b?.writes_per_minute, fallback.writesPerMinute, prefix + "writes_per_minute", 1...10_000_000),
                writeBurst: try value(b?.write_burst, fallback.writeBurst, prefix + "write_burst", 1...10_000_000),
                readsPerMinute: try value(b?.reads_per_minute, fallback.readsPerMinute, prefix + "reads_per_minute", 1...10_000_000),
                readBurst: try value(b?.read_burst, fallback.readBurst, prefix + "read_burst", 1...10_000_000))
        }
        let general = try budget(
            BudgetFile(
                writes_per_minute: writes_per_minute, write_burst: write_burst,
                reads_per_minute: reads_per_minute, read_burst: read_burst), d.budget, "limits.")
        var perClinic: [ClinicID: DaemonConfig.Limits.Budget] = [:]
        for (name, b) in (clinics ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let id = ClinicID(name), known.contains(where: { $0.id == id }) else {
                throw bad("limits.clinics.\(name) names no clinic of [clinics]")
            }
            perClinic[id] = try budget(b, general, "limits.clinics.\(name).")
        }
        return DaemonConfig.Limits(
            maxConnections: total, maxConnectionsPerPeer: perPeer, maxUnknownConnections: unknown, fdReserve: reserve,
            requestSeconds: seconds, refusalSummarySeconds: summary, budget: general, clinics: perClinic)
    }
}
