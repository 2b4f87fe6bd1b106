import RegistryCore

extension DaemonConfig {
    /// One configuration change, as the daemon logs it on SIGHUP (docs/OPERATIONS.md §Clinics
    /// and peers): what changed, and whether it needs a restart to take effect.
    public struct Change: Sendable, Equatable, CustomStringConvertible {
        public var text: String
        public var needsRestart: Bool

        public var description: String { needsRestart ? text + " (takes effect at the next restart)" : text }
    }

    /// Every difference from `self` to `new`, in the order of the file: daemon settings, roles,
    /// clinics, rate limits, [limits], audit, statistics, retention, categories, vocabulary.
    public func changes(to new: DaemonConfig) -> [Change] {
        var out: [Change] = []
        func restart(_ key: String, _ old: String, _ new: String) {
            if old != new { out.append(Change(text: "\(key) \(old) -> \(new)", needsRestart: true)) }
        }
        func value(_ key: String, _ old: some Equatable & CustomStringConvertible, _ new: some Equatable & CustomStringConvertible) {
            if "\(old)" != "\(new)" { out.append(Change(text: "\(key) \(old) -> \(new)", needsRestart: false)) }
        }
        func ids(_ role: String, _ old: [UInt32], _ new: [UInt32]) {
            let added = new.filter { !old.contains($0) }
            let removed = old.filter { !new.contains($0) }
            if !added.isEmpty { out.append(Change(text: "\(role) added: uid \(Self.list(added))", needsRestart: false)) }
            if !removed.isEmpty { out.append(Change(text: "\(role) removed: uid \(Self.list(removed))", needsRestart: false)) }
        }

        restart("daemon.socket", socketPath, new.socketPath)
        restart("daemon.socket_mode", String(socketMode, radix: 8), String(new.socketMode, radix: 8))
        restart("daemon.state_dir", stateDirectory, new.stateDirectory)
        restart("daemon.keys_dir", keysDirectory, new.keysDirectory)
        restart("daemon.database", databasePath, new.databasePath)
        restart("[storage] and [postgres]", storage.summary, new.storage.summary)
        restart("daemon.log_level", logLevel, new.logLevel)
        restart("daemon.space_reserve_mib", "\(spaceReserveMiB)", "\(new.spaceReserveMiB)")
        restart("daemon.user", serviceUserSpec ?? "(unset)", new.serviceUserSpec ?? "(unset)")

        ids("admin", adminUIDs, new.adminUIDs)
        ids("statistician", statisticianUIDs, new.statisticianUIDs)
        ids("monitor", monitorUIDs, new.monitorUIDs)

        for clinic in new.clinics where !clinics.contains(where: { $0.id == clinic.id }) {
            out.append(Change(text: "clinic \(clinic.id) added (\(Self.members(clinic)))", needsRestart: false))
        }
        for clinic in clinics where !new.clinics.contains(where: { $0.id == clinic.id }) {
            out.append(Change(text: "clinic \(clinic.id) removed (\(Self.members(clinic)))", needsRestart: false))
        }
        for clinic in new.clinics {
            if let old = clinics.first(where: { $0.id == clinic.id }), old != clinic {
                out.append(
                    Change(text: "clinic \(clinic.id) changed: \(Self.members(old)) -> \(Self.members(clinic))", needsRestart: false))
            }
        }

        value("rate_limits.oprf_per_minute", rateLimits.oprfPerMinute, new.rateLimits.oprfPerMinute)
        value("rate_limits.oprf_burst", rateLimits.oprfBurst, new.rateLimits.oprfBurst)
        // The store signs a checkpoint every N entries with the N it was opened with.
        restart("audit.checkpoint_every", "\(audit.checkpointEvery)", "\(new.audit.checkpointEvery)")
        value("limits.max_connections", limits.maxConnections, new.limits.maxConnections)
        value("limits.max_connections_per_peer", limits.maxConnectionsPerPeer, new.limits.maxConnectionsPerPeer)
        value("limits.max_unknown_connections", limits.maxUnknownConnections, new.limits.maxUnknownConnections)
        value("limits.fd_reserve", limits.fdReserve, new.limits.fdReserve)
        value("limits.request_seconds", limits.requestSeconds, new.limits.requestSeconds)
        restart("limits.refusal_summary_seconds", "\(limits.refusalSummarySeconds)", "\(new.limits.refusalSummarySeconds)")
        func budget(_ key: String, _ old: Limits.Budget?, _ new: Limits.Budget?) {
            value(
                key + "writes_per_minute", old.map { "\($0.writesPerMinute)" } ?? "(default)",
                new.map { "\($0.writesPerMinute)" } ?? "(default)")
            value(key + "write_burst", old.map { "\($0.writeBurst)" } ?? "(default)", new.map { "\($0.writeBurst)" } ?? "(default)")
            value(
                key + "reads_per_minute", old.map { "\($0.readsPerMinute)" } ?? "(default)",
                new.map { "\($0.readsPerMinute)" } ?? "(default)")
            value(key + "read_burst", old.map { "\($0.readBurst)" } ?? "(default)", new.map { "\($0.readBurst)" } ?? "(default)")
        }
        budget("limits.", limits.budget, new.limits.budget)
        for id in Set(limits.clinics.keys).union(new.limits.clinics.keys).sorted(by: { $0.rawValue < $1.rawValue }) {
            budget("limits.clinics.\(id).", limits.clinics[id], new.limits.clinics[id])
        }
        value("audit.checkpoint_minutes", audit.checkpointMinutes, new.audit.checkpointMinutes)
        value("audit.retention_days", audit.retentionDays, new.audit.retentionDays)
        value("statistics.k", statistics.k, new.statistics.k)
        value("statistics.privacy", statistics.privacy, new.statistics.privacy)
        value("statistics.epsilon", StatsDecimal.text(statistics.epsilonMicro), StatsDecimal.text(new.statistics.epsilonMicro))
        value(
            "statistics.monthly_budget", StatsDecimal.text(statistics.monthlyBudgetMicro),
            StatsDecimal.text(new.statistics.monthlyBudgetMicro))
        value("retention.completed_grace_days", rules.retention.completedGraceDays, new.rules.retention.completedGraceDays)
        value("retention.inactive_days", rules.retention.inactiveDays, new.rules.retention.inactiveDays)

        let names = Set(rules.categories.keys).union(new.rules.categories.keys).sorted()
        for name in names {
            switch (rules.categories[name], new.rules.categories[name]) {
            case (nil, .some):
                out.append(Change(text: "category \(name) added", needsRestart: false))
            case (.some, nil):
                out.append(Change(text: "category \(name) removed", needsRestart: false))
            case (.some(let old), .some(let policy)) where old != policy:
                out.append(Change(text: "category \(name) changed: \(Self.policyDifferences(old, policy))", needsRestart: false))
            default:
                break
            }
        }
        for (key, old, newTerms) in [
            ("vocabulary.substances", rules.substances, new.rules.substances),
            ("vocabulary.treatments", rules.treatments, new.rules.treatments),
        ] {
            let added = newTerms.filter { !old.contains($0) }
            let removed = old.filter { !newTerms.contains($0) }
            if !added.isEmpty { out.append(Change(text: "\(key) added: \(added.joined(separator: ", "))", needsRestart: false)) }
            if !removed.isEmpty { out.append(Change(text: "\(key) removed: \(removed.joined(separator: ", "))", needsRestart: false)) }
        }
        return out
    }

    public static func list(_ ids: [UInt32]) -> String { ids.map(String.init).joined(separator: ", ") }

    static func members(_ clinic: Clinic) -> String {
        var parts: [String] = []
        if !clinic.uids.isEmpty { parts.append("uids \(list(clinic.uids))") }
        if !clinic.gids.isEmpty { parts.append("gids \(list(clinic.gids))") }
        return parts.joined(separator: "; ")
    }

    static func policyDifferences(_ old: Policy, _ new: Policy) -> String {
        var parts: [String] = []
        func field(_ name: String, _ a: some CustomStringConvertible, _ b: some CustomStringConvertible) {
            if "\(a)" != "\(b)" { parts.append("\(name) \(a) -> \(b)") }
        }
        field("checkup_interval_days", old.checkupIntervalDays, new.checkupIntervalDays)
        field("remission_days", old.remissionDays, new.remissionDays)
        field("relapse", old.relapse.rawValue, new.relapse.rawValue)
        field("relapse_extend_days", old.relapseExtendDays, new.relapseExtendDays)
        field("cap_days", old.capDays, new.capDays)
        field("overdue_after_days", old.overdueAfterDays, new.overdueAfterDays)
        return parts.joined(separator: ", ")
    }
}
