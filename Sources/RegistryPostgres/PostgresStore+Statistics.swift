import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryProtocol

/// Unique persons per closed month, stored releases and the privacy budget on PostgreSQL: the
/// same intents as `SQLiteRegistryStore+Statistics.swift`. What two nodes must not do at once
/// (fold the same month twice, spend the same budget twice, record the same settings twice) runs
/// under one advisory lock, `statisticsLockKey`.
extension PostgresStore {
    /// The bytes of "ANRGSTAT" as a big-endian signed 64-bit integer (0x414E524753544154).
    public static let statisticsLockKey: Int64 = 0x414E_5247_5354_4154

    /// The clinic column of a folded unique-person counter: the count is across all clinics.
    static let allClinics = "*"

    public func foldUniquePersons(before month: Month) async throws(StorageError) -> Int {
        let cutoff = month.description
        let logger = self.logger
        // Most calls find nothing to fold: a read answers that without a write.
        let pending = try await read { connection in
            try await connection.row("SELECT 1 FROM unique_person_seen WHERE month < \(cutoff) LIMIT 1", logger: logger) != nil
        }
        guard pending else { return 0 }
        return try await write(bulk: true) { connection in
            try await connection.send("SELECT pg_advisory_xact_lock(\(Self.statisticsLockKey))", logger: logger)
            var cells: [(String, String, Int64)] = []
            for try await cell in try await connection.stream(
                "SELECT month, category, count(*) FROM unique_person_seen WHERE month < \(cutoff) GROUP BY month, category ORDER BY 1, 2",
                logger: logger
            ).decode((String, String, Int64).self) {
                cells.append(cell)
            }
            for (month, category, count) in cells {
                try await connection.send(
                    """
                    INSERT INTO counter (month, category, clinic, metric, value)
                    VALUES (\(month), \(category), \(Self.allClinics), \(CounterMetric.uniquePersons), \(count))
                    ON CONFLICT (month, category, clinic, metric) DO UPDATE SET value = counter.value + excluded.value
                    """, logger: logger)
            }
            try await connection.send("DELETE FROM unique_person_seen WHERE month < \(cutoff)", logger: logger)
            return cells.count
        }
    }

    public func uniquePersons(from: Month, to: Month) async throws(StorageError) -> [UniquePersonCount] {
        let logger = self.logger
        return try await read { connection in
            var counts: [UniquePersonCount] = []
            for try await (month, category, value) in try await connection.stream(
                """
                SELECT month, category, value FROM counter WHERE month >= \(from.description) AND month <= \(to.description)
                AND clinic = \(Self.allClinics) AND metric = \(CounterMetric.uniquePersons) ORDER BY month, category
                """, logger: logger
            ).decode((String, String, Int64).self) {
                if let month = Month(month) { counts.append(UniquePersonCount(month: month, category: category, value: Int(value))) }
            }
            return counts
        }
    }

    public func storedRelease(query: String) async throws(StorageError) -> StoredRelease? {
        let logger = self.logger
        return try await read { connection in try await Self.release(connection, query: query, logger: logger) }
    }

    /// A month is held to the smaller of the budget configured now and the one configured when
    /// its first noisy figure was released (docs/CRYPTO.md §Differential privacy). Under the
    /// statistics lock: two nodes releasing at once cannot both spend the last of a budget.
    public func storeRelease(_ release: StoredRelease, months: [Month], budgetMicro: Int) async throws(StorageError) -> StoredRelease {
        let logger = self.logger
        return try await write { connection in
            try await connection.send("SELECT pg_advisory_xact_lock(\(Self.statisticsLockKey))", logger: logger)
            if let existing = try await Self.release(connection, query: release.query, logger: logger) { return existing }
            for month in months {
                let row = try await connection.row(
                    "SELECT spent_micro, cap_micro FROM privacy_budget WHERE month = \(month.description)", logger: logger)
                let (spent, cap) = try row?.decode((Int64, Int64?).self) ?? (Int64(0), nil)
                let limit = min(cap.map(Int.init) ?? budgetMicro, budgetMicro)
                // A spent amount no anonreg writes (negative, or near Int64's end) is refused.
                let (total, overflow) = Int(spent).addingReportingOverflow(release.epsilonMicro)
                guard spent >= 0, !overflow else { throw StorageError.integrity(what: "privacy budget (an amount no anonreg writes)") }
                guard total <= limit else {
                    let held =
                        cap.map {
                            Int($0) < budgetMicro
                                ? " (the budget configured when its first figure was released; monthly_budget is \(PrivacySettings.decimal(budgetMicro)) now)"
                                : ""
                        } ?? ""
                    throw StorageError.privacyBudgetSpent(
                        message:
                            "the privacy budget of \(month) is spent (ε \(PrivacySettings.decimal(Int(spent))) of \(PrivacySettings.decimal(limit)) used\(held); "
                            + "this release needs \(PrivacySettings.decimal(release.epsilonMicro))); stored releases can still be read again by repeating their exact query"
                    )
                }
            }
            for month in months {
                try await connection.send(
                    """
                    INSERT INTO privacy_budget (month, spent_micro, cap_micro)
                    VALUES (\(month.description), \(Int64(release.epsilonMicro)), \(Int64(budgetMicro)))
                    ON CONFLICT (month) DO UPDATE SET spent_micro = privacy_budget.spent_micro + excluded.spent_micro,
                        cap_micro = coalesce(privacy_budget.cap_micro, excluded.cap_micro)
                    """, logger: logger)
            }
            try await connection.send(
                """
                INSERT INTO stats_release (query, released_on, epsilon_micro, body)
                VALUES (\(release.query), \(release.releasedOn.description), \(Int64(release.epsilonMicro)), \(release.body.bytea))
                """, logger: logger)
            return release
        }
    }

    public func privacyBudgetSpent(from: Month, to: Month) async throws(StorageError) -> [Month: Int] {
        let logger = self.logger
        return try await read { connection in
            var spent: [Month: Int] = [:]
            for try await (month, micro) in try await connection.stream(
                "SELECT month, spent_micro FROM privacy_budget WHERE month >= \(from.description) AND month <= \(to.description)",
                logger: logger
            ).decode((String, Int64).self) {
                if let month = Month(month) { spent[month] = Int(micro) }
            }
            return spent
        }
    }

    public func privacyBudgets() async throws(StorageError) -> [PrivacyBudgetMonth] {
        let logger = self.logger
        return try await read { connection in
            var months: [PrivacyBudgetMonth] = []
            for try await (month, spent, cap) in try await connection.stream(
                "SELECT month, spent_micro, cap_micro FROM privacy_budget ORDER BY month", logger: logger
            ).decode((String, Int64, Int64?).self) {
                if let month = Month(month) {
                    months.append(PrivacyBudgetMonth(month: month, spentMicro: Int(spent), capMicro: cap.map(Int.init)))
                }
            }
            return months
        }
    }

    /// Records `settings` as in force from `day` when they differ from the last recorded ones
    /// (under the statistics lock: two nodes starting at once record them once).
    public func recordPrivacySettings(_ settings: PrivacySettings, on day: Day) async throws(StorageError) -> Bool {
        let logger = self.logger
        return try await write { connection in
            try await connection.send("SELECT pg_advisory_xact_lock(\(Self.statisticsLockKey))", logger: logger)
            if let last = try await Self.privacySettings(connection, logger: logger).last, last.settings == settings { return false }
            try await connection.send(
                """
                INSERT INTO privacy_setting (recorded_on, privacy, epsilon_micro, budget_micro)
                VALUES (\(day.description), \(settings.privacy), \(Int64(settings.epsilonMicro)), \(Int64(settings.budgetMicro)))
                """, logger: logger)
            return true
        }
    }

    public func privacySettingsHistory() async throws(StorageError) -> [PrivacySettingsChange] {
        let logger = self.logger
        return try await read { connection in try await Self.privacySettings(connection, logger: logger) }
    }

    static func privacySettings(_ connection: PostgresConnection, logger: Logger) async throws -> [PrivacySettingsChange] {
        var changes: [PrivacySettingsChange] = []
        for try await (recorded, privacy, epsilon, budget) in try await connection.stream(
            "SELECT recorded_on, privacy, epsilon_micro, budget_micro FROM privacy_setting ORDER BY seq", logger: logger
        ).decode((String, Bool, Int64, Int64).self) {
            guard let day = Day(recorded) else { throw StorageError.tampered(what: "privacy setting") }
            changes.append(
                PrivacySettingsChange(
                    recordedOn: day, settings: PrivacySettings(privacy: privacy, epsilonMicro: Int(epsilon), budgetMicro: Int(budget))))
        }
        return changes
    }

    static func release(_ connection: PostgresConnection, query: String, logger: Logger) async throws -> StoredRelease? {
        guard
            let row = try await connection.row(
                "SELECT released_on, epsilon_micro, body FROM stats_release WHERE query = \(query)", logger: logger)
        else { return nil }
        let cells = row.makeRandomAccess()
        guard let day = Day(try cells[0].decode(String.self)) else { throw StorageError.tampered(what: "stats release") }
        return StoredRelease(query: query, releasedOn: day, epsilonMicro: Int(try cells[1].decode(Int64.self)), body: try cells[2].bytes())
    }
}
