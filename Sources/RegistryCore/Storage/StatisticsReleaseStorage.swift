import RegistryProtocol

/// What statistics read and record (docs/CRYPTO.md §Differential privacy): the monthly counters,
/// the folded unique-person counts, the stored noisy releases with their privacy budget, and
/// the history of the privacy settings.
public protocol StatisticsReleaseStorage: Sendable {
    /// Counter cells for months in `from...to`.
    func counters(from: Month, to: Month) async throws(StorageError) -> [CounterRow]

    /// Closes every month before `month` for unique persons: counts each closed month's
    /// month-keyed tags per category into the `unique-persons` counter and deletes the tags, in
    /// one transaction. Returns how many (month, category) cells were folded.
    func foldUniquePersons(before month: Month) async throws(StorageError) -> Int
    /// Folded unique-person counts for closed months in `from...to`.
    func uniquePersons(from: Month, to: Month) async throws(StorageError) -> [UniquePersonCount]

    /// The stored differentially private release for `query`, if one was made.
    func storedRelease(query: String) async throws(StorageError) -> StoredRelease?

    /// Stores a new release for `query`, charging `epsilonMicro` to each month in `months`,
    /// atomically. An existing release for `query` is returned instead (nothing is charged);
    /// a month whose spent budget would exceed `budgetMicro` refuses the release with
    /// `.privacyBudgetSpent` and changes nothing.
    func storeRelease(_ release: StoredRelease, months: [Month], budgetMicro: Int) async throws(StorageError) -> StoredRelease

    /// Privacy budget spent so far per month (micro-ε), for months in `from...to` that have any.
    func privacyBudgetSpent(from: Month, to: Month) async throws(StorageError) -> [Month: Int]

    /// Every month any release charged, with what it spent and the budget it is held to.
    func privacyBudgets() async throws(StorageError) -> [PrivacyBudgetMonth]

    /// Records `settings` as in force from `day`, if they differ from the last recorded ones.
    /// Returns whether anything was recorded.
    func recordPrivacySettings(_ settings: PrivacySettings, on day: Day) async throws(StorageError) -> Bool

    /// Every recorded change of the privacy settings, oldest first.
    func privacySettingsHistory() async throws(StorageError) -> [PrivacySettingsChange]
}
