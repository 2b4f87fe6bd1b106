// MARK: - Statistics (GET /v1/stats; docs/PROTOCOL.md §Statistics)

/// One published cell: its value, or a suppression mark. `shown` is what a reader sees:
/// the number, `<k` for a small cell (1 … k−1), or `x` for a cell hidden to protect another.
public struct StatsCell: Codable, Sendable, Equatable {
    /// The count; absent when the cell is suppressed.
    public var value: Int?
    public var shown: String

    public init(value: Int?, shown: String) {
        self.value = value
        self.shown = shown
    }
}

public struct StatsRow: Codable, Sendable, Equatable {
    public var month: Month
    /// One cell per entry of the table's `columns` (empty without a clinic breakdown).
    public var cells: [StatsCell]
    /// The month's count over all the table's columns.
    public var total: StatsCell

    public init(month: Month, cells: [StatsCell], total: StatsCell) {
        self.month = month
        self.cells = cells
        self.total = total
    }
}

/// One metric in one category: rows are months; with `byClinic`, columns are clinics.
public struct StatsTable: Codable, Sendable, Equatable {
    public var metric: String
    public var category: String
    /// Clinic ids (with `byClinic`), otherwise empty.
    public var columns: [String]
    public var rows: [StatsRow]
    /// Per column, the sum over the months (absent for `unique-persons`, which does not add up
    /// over months, and without columns).
    public var columnTotals: [StatsCell]?
    /// The sum over all months and columns (absent for `unique-persons`).
    public var total: StatsCell?

    public init(metric: String, category: String, columns: [String], rows: [StatsRow], columnTotals: [StatsCell]?, total: StatsCell?) {
        self.metric = metric
        self.category = category
        self.columns = columns
        self.rows = rows
        self.columnTotals = columnTotals
        self.total = total
    }
}

/// The differential-privacy parameters of a noisy release.
public struct StatsPrivacy: Codable, Sendable, Equatable {
    /// "two-sided geometric".
    public var mechanism: String
    /// ε of this release (charged to each month in the range), as a decimal string.
    public var epsilon: String
    /// The day the release was made and stored; repeating the same query returns it unchanged.
    public var releasedOn: Day

    public init(mechanism: String, epsilon: String, releasedOn: Day) {
        self.mechanism = mechanism
        self.epsilon = epsilon
        self.releasedOn = releasedOn
    }
}

public struct StatsResponse: Codable, Sendable, Equatable {
    public var from: Month
    public var to: Month
    public var byClinic: Bool
    /// The category asked for, or absent for all.
    public var category: String?
    /// The day the figures were computed.
    public var generatedOn: Day
    /// Cells from 1 to k−1 are shown as `<k`.
    public var k: Int
    /// The last closed month: unique-person counts exist up to it and never for later months.
    public var closedThrough: Month
    /// Present when the release is noisy (differential privacy on).
    public var privacy: StatsPrivacy?
    public var tables: [StatsTable]

    public init(
        from: Month, to: Month, byClinic: Bool, category: String?, generatedOn: Day, k: Int, closedThrough: Month,
        privacy: StatsPrivacy?, tables: [StatsTable]
    ) {
        self.from = from
        self.to = to
        self.byClinic = byClinic
        self.category = category
        self.generatedOn = generatedOn
        self.k = k
        self.closedThrough = closedThrough
        self.privacy = privacy
        self.tables = tables
    }
}

// MARK: - GET /v1/stats/privacy

/// Differential-privacy settings as the wire shows them (decimal strings for ε).
public struct StatsPrivacySettingsWire: Codable, Sendable, Equatable {
    public var privacy: Bool
    /// ε charged per month by each noisy release.
    public var epsilon: String
    /// The most ε releases may spend on one month.
    public var monthlyBudget: String

    public init(privacy: Bool, epsilon: String, monthlyBudget: String) {
        self.privacy = privacy
        self.epsilon = epsilon
        self.monthlyBudget = monthlyBudget
    }
}

/// One change of the settings: the day the daemon (or an offline release) first found them in
/// force. Each is also in the audit log (action `privacy-settings`).
public struct StatsPrivacyChangeWire: Codable, Sendable, Equatable {
    public var recordedOn: Day
    public var settings: StatsPrivacySettingsWire

    public init(recordedOn: Day, settings: StatsPrivacySettingsWire) {
        self.recordedOn = recordedOn
        self.settings = settings
    }
}

/// A month's privacy budget: ε spent by its noisy releases, and the budget it is held to (the
/// one configured when its first noisy figure was released; absent for a month charged before
/// anonreg recorded it).
public struct StatsPrivacyMonthWire: Codable, Sendable, Equatable {
    public var month: Month
    public var spent: String
    public var cap: String?

    public init(month: Month, spent: String, cap: String?) {
        self.month = month
        self.spent = spent
        self.cap = cap
    }
}

public struct StatsPrivacyStatus: Codable, Sendable, Equatable {
    /// The settings in force now.
    public var current: StatsPrivacySettingsWire
    /// The last closed month (unique persons exist up to it; with privacy on, `anonreg stats`
    /// asks for closed months only by default).
    public var closedThrough: Month
    /// Every recorded change, oldest first.
    public var changes: [StatsPrivacyChangeWire]
    /// Every month with noisy releases, oldest first.
    public var months: [StatsPrivacyMonthWire]

    public init(current: StatsPrivacySettingsWire, closedThrough: Month, changes: [StatsPrivacyChangeWire], months: [StatsPrivacyMonthWire])
    {
        self.current = current
        self.closedThrough = closedThrough
        self.changes = changes
        self.months = months
    }
}
