// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The TOML file shapes decode by property name, so they keep the file's snake_case keys.

import Foundation
import RegistryCore
import RegistryProtocol

/// `anonreg.toml`, validated. See docs/OPERATIONS.md §Configuration for every key.
public struct DaemonConfig: Sendable, Equatable {
    public struct Clinic: Sendable, Equatable {
        public var id: ClinicID
        public var uids: [UInt32]
        public var gids: [UInt32]
    }

    public struct RateLimits: Sendable, Equatable {
        /// OPRF evaluations refilled per minute, per clinic.
        public var oprfPerMinute: Int
        /// Bucket size: how many evaluations may come at once.
        public var oprfBurst: Int
    }

    public var path: String
    public var socketPath: String
    public var socketMode: UInt32
    public var stateDirectory: String
    public var keysDirectory: String
    public var databasePath: String
    public var logLevel: String
    /// `daemon.space_reserve_mib`: size of `STATE_DIR/.space-reserve`, released on a full disk
    /// so reads can still be audited (docs/ROBUSTNESS.md §Disk full); 0 disables it.
    public var spaceReserveMiB: Int = 8
    public var adminUIDs: [UInt32]
    public var statisticianUIDs: [UInt32]
    /// `access.monitor_uids`: may read `GET /metrics` and `GET /v1/health`, nothing else.
    public var monitorUIDs: [UInt32] = []
    /// `daemon.user`: the service user (a name or a uid) that owns the state directory and runs
    /// anonregd; nil when not set (a trial directory of `anonreg init`).
    public var serviceUserSpec: String? = nil
    public var clinics: [Clinic]
    public var rateLimits: RateLimits
    public var rules: MonitoringRules
    public var audit: Audit
    public var statistics: Statistics
    /// `[limits]`: connections, request deadline, per-clinic budgets (DaemonConfig+Limits.swift).
    public var limits: Limits = .defaults
    /// `[storage]` and `[postgres]`: SQLite (the default) or PostgreSQL (DaemonConfig+Storage.swift).
    public var storage: Storage = .sqlite

    /// `[statistics]`: disclosure control of `GET /v1/stats` (docs/OPERATIONS.md §Statistics).
    public struct Statistics: Sendable, Equatable {
        /// Cells from 1 to k−1 are suppressed (shown `<k`).
        public var k: Int
        /// Whether releases get two-sided geometric noise and are stored.
        public var privacy: Bool
        /// ε per release, in millionths.
        public var epsilonMicro: Int
        /// Total ε that releases may spend on one month, in millionths.
        public var monthlyBudgetMicro: Int

        public static let defaults = Statistics(k: 5, privacy: false, epsilonMicro: 500_000, monthlyBudgetMicro: 2_000_000)

        /// The differential-privacy part, as the store records and audits it.
        public var privacySettings: PrivacySettings {
            PrivacySettings(privacy: privacy, epsilonMicro: epsilonMicro, budgetMicro: monthlyBudgetMicro)
        }
    }

    /// `[audit]`: checkpoint cadence and retention of the audit log.
    public struct Audit: Sendable, Equatable {
        /// A signed checkpoint every this many entries ...
        public var checkpointEvery: Int
        /// ... and at least every this many minutes (and on shutdown).
        public var checkpointMinutes: Int
        /// Entries older than this many days are pruned down to a signed checkpoint; 0 keeps all.
        public var retentionDays: Int
    }

    /// Reads and validates a configuration file. Every problem is reported with the file name.
    public static func load(path: String) throws(ConfigError) -> DaemonConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path: path) }
        guard let text = String(data: data, encoding: .utf8) else { throw .invalid(path: path, reason: "it is not UTF-8 text") }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws(ConfigError) -> DaemonConfig {
        let file: ConfigFile
        do {
            file = try TOMLStrictDecoder.decode(ConfigFile.self, from: text)
        } catch let error as TOMLSyntaxError {
            throw .invalid(path: path, reason: error.description)
        } catch let error as TOMLStrictDecoder.UnknownKeys {
            throw .invalid(path: path, reason: "unknown keys: \(error.keys.joined(separator: ", "))")
        } catch let error as DecodingError {
            throw .invalid(path: path, reason: ConfigError.describe(error))
        } catch {
            throw .invalid(path: path, reason: "\(error)")
        }
        return try file.validated(path: path)
    }

    /// The account `daemon.user` names on this host, if it names one that exists.
    public var serviceUser: ServiceUser? { serviceUserSpec.flatMap(ServiceUser.resolve) }

    /// The clinic a peer acts as: by uid first, then by gid. Nil for an unknown peer.
    public func clinic(uid: UInt32, gid: UInt32) -> ClinicID? {
        clinics.first { $0.uids.contains(uid) }?.id ?? clinics.first { $0.gids.contains(gid) }?.id
    }
}

public enum ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    case unreadable(path: String)
    case invalid(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read the configuration file \(path)"
        case .invalid(let path, let reason): "\(path): \(reason)"
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing key \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "wrong type for \(path(context))"
        case .dataCorrupted(let context):
            return "bad value for \(path(context))"
        @unknown default:
            return "bad configuration"
        }
    }
}

/// The TOML shape, as decoded (snake_case keys).
struct ConfigFile: Decodable {
    struct Daemon: Decodable {
        var socket: String
        var socket_mode: String?
        var state_dir: String
        var keys_dir: String?
        var database: String?
        var log_level: String?
        var space_reserve_mib: Int?
        var user: String?
    }
    struct Access: Decodable {
        var admin_uids: [Int]?
        var statistician_uids: [Int]?
        var monitor_uids: [Int]?
    }
    struct Clinic: Decodable {
        var uids: [Int]?
        var gids: [Int]?
    }
    struct Limits: Decodable {
        var oprf_per_minute: Int?
        var oprf_burst: Int?
    }
    struct RetentionFile: Decodable {
        var completed_grace_days: Int?
        var inactive_days: Int?
    }
    struct Category: Decodable {
        var checkup_interval_days: Int
        var remission_days: Int
        var relapse: String
        var relapse_extend_days: Int?
        var cap_days: Int
        var overdue_after_days: Int?
    }
    struct AuditFile: Decodable {
        var checkpoint_every: Int?
        var checkpoint_minutes: Int?
        var retention_days: Int?
    }
    struct StatisticsFile: Decodable {
        var k: Int?
        var privacy: Bool?
        var epsilon: Double?
        var monthly_budget: Double?
    }
    struct Vocabulary: Decodable {
        var substances: [String]
        var treatments: [String]
    }

    var daemon: Daemon
    var access: Access?
    var clinics: [String: Clinic]?
    var rate_limits: Limits?
    var retention: RetentionFile?
    var categories: [String: Category]
    var vocabulary: Vocabulary?
    var audit: AuditFile?
    var statistics: StatisticsFile?
    var limits: LimitsFile?
    var storage: StorageFile?
    var postgres: PostgresFile?

    func validated(path: String) throws(ConfigError) -> DaemonConfig {
        func bad(_ reason: String) -> ConfigError { .invalid(path: path, reason: reason) }
        guard daemon.socket.hasPrefix("/") else { throw bad("daemon.socket must be an absolute path") }
        guard daemon.socket.utf8.count < 108 else { throw bad("daemon.socket is longer than a Unix socket path may be (107 bytes)") }
        guard daemon.state_dir.hasPrefix("/") else { throw bad("daemon.state_dir must be an absolute path") }
        let modeText = daemon.socket_mode ?? "0660"
        guard let mode = UInt32(modeText, radix: 8), mode & ~0o777 == 0, mode & 0o007 == 0 else {
            throw bad("daemon.socket_mode must be an octal mode with no bits for others, such as \"0660\"")
        }
        let keys = daemon.keys_dir ?? daemon.state_dir + "/keys"
        let database = daemon.database.map { $0.hasPrefix("/") ? $0 : daemon.state_dir + "/" + $0 } ?? daemon.state_dir + "/registry.sqlite"
        let logLevel = daemon.log_level ?? "info"
        guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel) else {
            throw bad("daemon.log_level must be trace, debug, info, notice, warning, error or critical")
        }
        func ids(_ values: [Int]?, _ name: String) throws(ConfigError) -> [UInt32] {
            var out: [UInt32] = []
            for v in values ?? [] {
                guard let id = UInt32(exactly: v), id != UInt32.max else { throw bad("\(name) contains \(v), which is not a uid/gid") }
                out.append(id)
            }
            return out
        }
        if let user = daemon.user {
            let isName = user.range(of: "^[a-z_][a-z0-9_-]{0,31}$", options: .regularExpression) != nil
            guard isName || UInt32(user).map({ $0 != UInt32.max }) == true else {
                throw bad("daemon.user must be a user name or a uid, such as \"anonreg\"")
            }
        }
        // The service user, when this host knows it: no clinic may be it or its group.
        let service = daemon.user.flatMap(ServiceUser.resolve)
        let spaceReserve = daemon.space_reserve_mib ?? 8
        guard (0...4096).contains(spaceReserve) else { throw bad("daemon.space_reserve_mib must be 0 (no reserve) to 4096") }
        var clinicList: [DaemonConfig.Clinic] = []
        var seenUIDs: [UInt32: String] = [:]
        var seenGIDs: [UInt32: String] = [:]
        for (name, clinic) in (clinics ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let id = ClinicID(name) else { throw bad("clinic id \"\(name)\" must be 1-64 of a-z 0-9 - _") }
            let uids = try ids(clinic.uids, "clinics.\(name).uids")
            let gids = try ids(clinic.gids, "clinics.\(name).gids")
            guard !uids.isEmpty || !gids.isEmpty else { throw bad("clinics.\(name) needs uids or gids") }
            // Every process whose primary group is root's, or the daemon's own, would act as the
            // clinic. Root's uid stays possible: `anonreg init`'s single-user trial needs it.
            if gids.contains(0) {
                throw bad(
                    "clinics.\(name).gids contains 0 (root's group): every process in root's group would act as clinic \(name); use the clinic system's own uid or group"
                )
            }
            if let service, uids.contains(service.uid) {
                throw bad(
                    "clinics.\(name).uids contains \(service.uid), the service user \(service) that runs anonregd; a clinic needs an account of its own"
                )
            }
            if let service, gids.contains(service.gid) {
                throw bad(
                    "clinics.\(name).gids contains \(service.gid), the group of the service user \(service): the daemon itself and every process in that group would act as clinic \(name); use the clinic system's own group"
                )
            }
            for uid in uids {
                if let other = seenUIDs[uid] { throw bad("uid \(uid) is listed for both clinics \(other) and \(name)") }
                seenUIDs[uid] = name
            }
            for gid in gids {
                if let other = seenGIDs[gid] { throw bad("gid \(gid) is listed for both clinics \(other) and \(name)") }
                seenGIDs[gid] = name
            }
            clinicList.append(.init(id: id, uids: uids, gids: gids))
        }
        let limits = DaemonConfig.RateLimits(oprfPerMinute: rate_limits?.oprf_per_minute ?? 120, oprfBurst: rate_limits?.oprf_burst ?? 100)
        guard limits.oprfPerMinute >= 1, limits.oprfPerMinute <= 1_000_000, limits.oprfBurst >= 1, limits.oprfBurst <= 1_000_000 else {
            throw bad("rate_limits.oprf_per_minute and oprf_burst must be 1 to 1000000")
        }
        var policies: [String: Policy] = [:]
        for (name, c) in categories {
            guard ClinicID(name) != nil else { throw bad("category \"\(name)\" must be 1-64 of a-z 0-9 - _") }
            guard let relapse = RelapseRule(rawValue: c.relapse) else {
                throw bad("categories.\(name).relapse must be restart, extend or clinician")
            }
            let policy = Policy(
                checkupIntervalDays: c.checkup_interval_days, remissionDays: c.remission_days, relapse: relapse,
                relapseExtendDays: c.relapse_extend_days ?? 0, capDays: c.cap_days, overdueAfterDays: c.overdue_after_days ?? 30)
            if let problem = policy.problems.first { throw bad("categories.\(name): \(problem)") }
            policies[name] = policy
        }
        guard !policies.isEmpty else { throw bad("at least one [categories.NAME] is needed") }
        let retention = Retention(
            completedGraceDays: retention?.completed_grace_days ?? 30, inactiveDays: retention?.inactive_days ?? 730)
        guard retention.completedGraceDays >= 0, retention.completedGraceDays <= 3650, retention.inactiveDays >= 1,
            retention.inactiveDays <= 36500
        else {
            throw bad("retention.completed_grace_days must be 0 to 3650 and inactive_days 1 to 36500")
        }
        let substances = vocabulary?.substances ?? MonitoringRules.defaultSubstances
        let treatments = vocabulary?.treatments ?? MonitoringRules.defaultTreatments
        for term in substances + treatments where ClinicID(term) == nil {
            throw bad("vocabulary term \"\(term)\" must be 1-64 of a-z 0-9 - _")
        }
        let audit = DaemonConfig.Audit(
            checkpointEvery: self.audit?.checkpoint_every ?? 1000,
            checkpointMinutes: self.audit?.checkpoint_minutes ?? 10,
            retentionDays: self.audit?.retention_days ?? 0)
        guard (1...1_000_000).contains(audit.checkpointEvery), (1...1440).contains(audit.checkpointMinutes),
            (0...36500).contains(audit.retentionDays)
        else {
            throw bad("audit.checkpoint_every must be 1 to 1000000, checkpoint_minutes 1 to 1440, retention_days 0 to 36500")
        }
        let defaults = DaemonConfig.Statistics.defaults
        func micro(_ value: Double?, _ fallback: Int, _ name: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
            guard let value else { return fallback }
            let scaled = (value * 1_000_000).rounded()
            guard value.isFinite, abs(scaled - value * 1_000_000) < 1e-3, range.contains(Int(scaled)) else {
                throw bad(
                    "statistics.\(name) must be \(StatsDecimal.text(range.lowerBound)) to \(StatsDecimal.text(range.upperBound)) with at most six decimals"
                )
            }
            return Int(scaled)
        }
        let statistics = DaemonConfig.Statistics(
            k: self.statistics?.k ?? defaults.k, privacy: self.statistics?.privacy ?? defaults.privacy,
            epsilonMicro: try micro(self.statistics?.epsilon, defaults.epsilonMicro, "epsilon", 10_000...10_000_000),
            monthlyBudgetMicro: try micro(
                self.statistics?.monthly_budget, defaults.monthlyBudgetMicro, "monthly_budget", 10_000...100_000_000))
        // k = 2 would publish nothing but ones as "<2" (zeros are shown), so at least 3.
        guard (3...100).contains(statistics.k) else { throw bad("statistics.k must be 3 to 100") }
        guard statistics.monthlyBudgetMicro >= statistics.epsilonMicro else {
            throw bad("statistics.monthly_budget must be at least statistics.epsilon (one release)")
        }
        // DESIGN invariant 2: statistics are never for clinic peers. A statistician uid that is
        // also a clinic's uid could enrol a linkage value and watch the counts.
        let statisticianUIDs = try ids(access?.statistician_uids, "access.statistician_uids")
        // Clinics also match by primary gid: a statistician whose primary group is a clinic's
        // would connect as that clinic (the daemon then refuses it statistics; this says so
        // before it starts).
        for uid in statisticianUIDs {
            if let clinic = seenUIDs[uid] {
                throw bad("uid \(uid) is both a statistician and a uid of clinic \(clinic); statistics are never for clinic peers")
            }
            if let gid = DaemonConfig.primaryGroup(of: uid), let clinic = seenGIDs[gid] {
                throw bad(
                    "statistician uid \(uid) has primary gid \(gid), a gid of clinic \(clinic): it would connect as that clinic, and statistics are never for clinic peers; give it a primary group of its own (usermod -g)"
                )
            }
        }
        var config = DaemonConfig(
            path: path, socketPath: daemon.socket, socketMode: mode, stateDirectory: daemon.state_dir, keysDirectory: keys,
            databasePath: database, logLevel: logLevel, spaceReserveMiB: spaceReserve,
            adminUIDs: try ids(access?.admin_uids, "access.admin_uids"),
            statisticianUIDs: statisticianUIDs, monitorUIDs: try ids(access?.monitor_uids, "access.monitor_uids"),
            serviceUserSpec: daemon.user,
            clinics: clinicList, rateLimits: limits,
            rules: MonitoringRules(categories: policies, substances: substances, treatments: treatments, retention: retention),
            audit: audit, statistics: statistics)
        config.limits = try (self.limits ?? LimitsFile()).validated(path: path, clinics: clinicList)
        config.storage = try validatedStorage(path: path)
        return config
    }
}

extension DaemonConfig {
    /// The primary gid of `uid` from the user database, nil for a uid without an entry (the
    /// daemon's peer check by gid still applies to it).
    static func primaryGroup(of uid: UInt32) -> UInt32? {
        guard let entry = getpwuid(uid_t(uid)) else { return nil }
        return UInt32(entry.pointee.pw_gid)
    }
}

/// Millionths as a decimal for messages: 1500000 → "1.5".
enum StatsDecimal {
    static func text(_ micro: Int) -> String {
        let whole = micro / 1_000_000
        var fraction = String(micro % 1_000_000)
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return fraction.isEmpty ? String(whole) : "\(whole).\(fraction)"
    }
}
