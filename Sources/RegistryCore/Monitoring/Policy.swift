import RegistryProtocol

/// What a relapse does to the remission clock (config `relapse`).
public enum RelapseRule: String, Codable, Sendable, CaseIterable {
    /// The remission clock starts again at the next remission.
    case restart
    /// The required remission grows by `relapseExtendDays`.
    case extend
    /// The check-up says which (`relapseAction`).
    case clinician
}

/// The monitoring policy of one category (config `[categories.NAME]`).
public struct Policy: Codable, Sendable, Equatable {
    public var checkupIntervalDays: Int
    public var remissionDays: Int
    public var relapse: RelapseRule
    public var relapseExtendDays: Int
    /// Hard cap on total monitoring, counted from enrolment.
    public var capDays: Int
    /// Days after the due date before a case counts as overdue.
    public var overdueAfterDays: Int

    public init(
        checkupIntervalDays: Int, remissionDays: Int, relapse: RelapseRule, relapseExtendDays: Int,
        capDays: Int, overdueAfterDays: Int
    ) {
        self.checkupIntervalDays = checkupIntervalDays
        self.remissionDays = remissionDays
        self.relapse = relapse
        self.relapseExtendDays = relapseExtendDays
        self.capDays = capDays
        self.overdueAfterDays = overdueAfterDays
    }

    /// The defaults `anonreg init` writes for `dependence`.
    public static let dependence = Policy(
        checkupIntervalDays: 90, remissionDays: 1095, relapse: .restart, relapseExtendDays: 180, capDays: 1825, overdueAfterDays: 30)
    /// The defaults `anonreg init` writes for `harmful-use`.
    public static let harmfulUse = Policy(
        checkupIntervalDays: 90, remissionDays: 365, relapse: .restart, relapseExtendDays: 90, capDays: 730, overdueAfterDays: 30)

    /// Problems with the numbers, in words; empty when the policy is usable.
    public var problems: [String] {
        var out: [String] = []
        if checkupIntervalDays < 1 || checkupIntervalDays > 3650 { out.append("checkup_interval_days must be 1 to 3650") }
        if remissionDays < 1 || remissionDays > 36500 { out.append("remission_days must be 1 to 36500") }
        if relapseExtendDays < 0 || relapseExtendDays > 36500 { out.append("relapse_extend_days must be 0 to 36500") }
        if capDays < remissionDays { out.append("cap_days must be at least remission_days") }
        if capDays > 36500 { out.append("cap_days must be at most 36500") }
        if overdueAfterDays < 0 || overdueAfterDays > 3650 { out.append("overdue_after_days must be 0 to 3650") }
        return out
    }
}

/// Retention rules of the sweeper (config `[retention]`).
public struct Retention: Codable, Sendable, Equatable {
    /// Days a completed subject is kept before erasure.
    public var completedGraceDays: Int
    /// A subject with no check-up for this many days is erased.
    public var inactiveDays: Int

    public init(completedGraceDays: Int = 30, inactiveDays: Int = 730) {
        self.completedGraceDays = completedGraceDays
        self.inactiveDays = inactiveDays
    }
}

/// Everything the domain needs from the configuration.
public struct MonitoringRules: Sendable, Equatable {
    public var categories: [String: Policy]
    public var substances: [String]
    public var treatments: [String]
    public var retention: Retention

    public init(categories: [String: Policy], substances: [String], treatments: [String], retention: Retention) {
        self.categories = categories
        self.substances = substances
        self.treatments = treatments
        self.retention = retention
    }

    public static let defaultSubstances = ["opioids", "stimulants", "cannabis", "alcohol", "sedatives", "other"]
    public static let defaultTreatments = ["methadone", "buprenorphine", "naltrexone", "psychosocial", "needle-exchange", "naloxone-kit"]

    public static let defaults = MonitoringRules(
        categories: ["dependence": .dependence, "harmful-use": .harmfulUse],
        substances: defaultSubstances, treatments: defaultTreatments, retention: Retention())
}
