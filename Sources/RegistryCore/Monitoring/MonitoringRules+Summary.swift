import RegistryProtocol

extension MonitoringRules {
    /// A canonical one-line description of every category's policy and the retention rules.
    /// The audit log records it whenever it changes, so "which rules applied when" is on record.
    public var policySummary: String {
        let categories = self.categories.keys.sorted().map { name -> String in
            let p = self.categories[name]!
            return "\(name): every \(p.checkupIntervalDays)d, remission \(p.remissionDays)d, relapse \(p.relapse.rawValue)"
                + (p.relapseExtendDays > 0 ? " +\(p.relapseExtendDays)d" : "") + ", cap \(p.capDays)d, overdue after \(p.overdueAfterDays)d"
        }
        return categories.joined(separator: "; ")
            + "; retention: completed grace \(retention.completedGraceDays)d, inactive \(retention.inactiveDays)d"
    }
}
