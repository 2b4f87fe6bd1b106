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
