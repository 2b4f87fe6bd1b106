import RegistryProtocol

/// One aggregate counter cell: month × category × clinic × metric. Counters have no link to any
/// subject and survive erasure.
public struct CounterKey: Hashable, Sendable, Comparable {
    public var month: Month
    public var category: String
    public var clinic: ClinicID
    public var metric: String

    public init(month: Month, category: String, clinic: ClinicID, metric: String) {
        self.month = month
        self.category = category
        self.clinic = clinic
        self.metric = metric
    }

    public static func < (a: CounterKey, b: CounterKey) -> Bool {
        (a.month, a.category, a.clinic, a.metric) < (b.month, b.category, b.clinic, b.metric)
    }
}

public struct CounterIncrement: Sendable, Equatable {
    public var key: CounterKey
    public var by: Int

    public init(_ key: CounterKey, by: Int = 1) {
        self.key = key
        self.by = by
    }
}

public struct CounterRow: Sendable, Equatable {
    public var key: CounterKey
    public var value: Int

    public init(key: CounterKey, value: Int) {
        self.key = key
        self.value = value
    }
}

/// Why a subject was erased; each has its own counter.
public enum ErasureCause: String, Sendable, CaseIterable, Codable {
    case completed
    case cap
    case inactive
    case withdrawn
}

/// The metric names of counter cells, in the order statistics tables list them.
public enum CounterMetric {
    public static let enrolled = "enrolled"
    public static let anonymousEpisode = "anonymous-episode"
    public static let checkupRemission = "checkup-remission"
    public static let checkupRelapse = "checkup-relapse"
    public static let checkupMissed = "checkup-missed"
    public static let checkupOther = "checkup-other"
    public static let completed = "completed"
    public static let erasedCompleted = "erased-completed"
    public static let erasedCap = "erased-cap"
    public static let erasedInactive = "erased-inactive"
    public static let withdrawn = "withdrawn"
    /// Unique persons by linkage value: folded from an open month's tags when the month closes
    /// (docs/CRYPTO.md §Unique persons). Kept per month × category only, never per clinic.
    public static let uniquePersons = "unique-persons"

    /// The additive metrics (event counts), which sum over months and clinics.
    public static let additive = [
        enrolled, anonymousEpisode, checkupRemission, checkupRelapse, checkupMissed, checkupOther,
        completed, erasedCompleted, erasedCap, erasedInactive, withdrawn,
    ]
    /// Every metric a statistics release can carry.
    public static let all = additive + [uniquePersons]
}

/// Asks the store to remember, for the open month, that a person with this enrolment's linkage
/// value was seen in `category` (a month-keyed tag; docs/CRYPTO.md §Unique persons).
public struct UniquePersonMark: Sendable, Equatable {
    public var month: Month
    public var category: String

    public init(month: Month, category: String) {
        self.month = month
        self.category = category
    }
}

/// A closed month's count of distinct linkage values in one category.
public struct UniquePersonCount: Sendable, Equatable {
    public var month: Month
    public var category: String
    public var value: Int

    public init(month: Month, category: String, value: Int) {
        self.month = month
        self.category = category
        self.value = value
    }
}
