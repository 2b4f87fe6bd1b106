import Foundation
import RegistryCore
import RegistryProtocol

/// One statistics release, from a query to the JSON body handed out (docs/PROTOCOL.md
/// §Statistics). The daemon (`GET /v1/stats`) and the offline `anonreg stats --state-dir` both
/// go through here, so a release is folded, built, noised, stored and charged the same way.
public enum StatisticsRelease {
    /// What a release depends on besides the query and the counters.
    public struct Settings: Sendable {
        public var k: Int
        public var categories: [String]
        public var clinics: [String]
        public var privacy: PrivacySettings

        public init(k: Int, categories: [String], clinics: [String], privacy: PrivacySettings) {
            self.k = k
            self.categories = categories
            self.clinics = clinics
            self.privacy = privacy
        }
    }

    /// The encoder of release bodies (a stored release is returned byte for byte).
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// The JSON body of the release for `query` on `today`.
    ///
    /// - Months that have ended are closed for unique persons first.
    /// - With privacy on, a stored release for the same query is returned as it was; a new one is
    ///   noised, stored and charged to each month it covers (refused past a month's budget).
    /// - With privacy off, a range holding a month that had a noisy release is refused: exact
    ///   figures would undo the noise, spending more than that month's budget.
    ///
    /// Storage refusals and failures come out as `DomainError`.
    public static func body(
        for query: StatsQuery, today: Day, settings: Settings, storage: any StatisticsReleaseStorage,
        random: @autoclosure () -> any UniformSource
    ) async throws -> [UInt8] {
        do { _ = try await storage.foldUniquePersons(before: today.month) } catch { throw DomainError.storage(error) }
        let privacy = settings.privacy
        let months = query.from.months(through: query.to)
        if privacy.privacy {
            let stored: StoredRelease?
            do { stored = try await storage.storedRelease(query: query.releaseKey) } catch { throw DomainError.storage(error) }
            if let stored { return stored.body }
            let response = try await build(
                query, today: today, settings: settings, storage: storage,
                privacy: StatsBuilder.Privacy(epsilonMicro: privacy.epsilonMicro, random: random()))
            let fresh = StoredRelease(
                query: query.releaseKey, releasedOn: today, epsilonMicro: privacy.epsilonMicro,
                body: Array(try encoder.encode(response)))
            // A concurrent identical query may have stored first: its release is returned.
            do { return try await storage.storeRelease(fresh, months: months, budgetMicro: privacy.budgetMicro).body } catch {
                throw DomainError.storage(error)
            }
        }
        let spent: [Month: Int]
        do { spent = try await storage.privacyBudgetSpent(from: query.from, to: query.to) } catch { throw DomainError.storage(error) }
        if let noisy = spent.filter({ $0.value > 0 }).keys.min() {
            throw DomainError(
                .refused, "privacy_budget_spent",
                "differential privacy is off, but \(noisy) already had noisy releases: exact figures for it would undo their noise; "
                    + "ask for months without noisy releases, or set [statistics] privacy = true again")
        }
        return Array(try encoder.encode(try await build(query, today: today, settings: settings, storage: storage, privacy: nil)))
    }

    static func build(
        _ query: StatsQuery, today: Day, settings: Settings, storage: any StatisticsReleaseStorage,
        privacy: StatsBuilder.Privacy?
    ) async throws -> StatsResponse {
        let counters: [CounterRow]
        let unique: [UniquePersonCount]
        do {
            counters = try await storage.counters(from: query.from, to: query.to)
            unique = try await storage.uniquePersons(from: query.from, to: query.to)
        } catch { throw DomainError.storage(error) }
        let builder = StatsBuilder(k: settings.k, categories: settings.categories, clinics: settings.clinics)
        return try builder.build(query, counters: counters, uniquePersons: unique, today: today, privacy: privacy)
    }
}

extension StatsPrivacySettingsWire {
    public init(_ settings: PrivacySettings) {
        self.init(
            privacy: settings.privacy, epsilon: PrivacySettings.decimal(settings.epsilonMicro),
            monthlyBudget: PrivacySettings.decimal(settings.budgetMicro))
    }
}

extension StatsPrivacyStatus {
    /// The status from the store's history and budgets (daemon and offline alike).
    public init(current: PrivacySettings, today: Day, history: [PrivacySettingsChange], budgets: [PrivacyBudgetMonth]) {
        self.init(
            current: StatsPrivacySettingsWire(current), closedThrough: today.month.previous,
            changes: history.map { StatsPrivacyChangeWire(recordedOn: $0.recordedOn, settings: StatsPrivacySettingsWire($0.settings)) },
            months: budgets.map {
                StatsPrivacyMonthWire(
                    month: $0.month, spent: PrivacySettings.decimal($0.spentMicro),
                    cap: $0.capMicro.map(PrivacySettings.decimal))
            })
    }
}
