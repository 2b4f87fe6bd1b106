import Foundation
internal import GRDB
import RegistryCore
import RegistryProtocol

/// Unique persons per closed month, stored releases and the privacy budget (docs/STORAGE.md
/// §Statistics).
extension SQLiteRegistryStore {
    /// The clinic column of a folded unique-person counter: the count is across all clinics
    /// (a clinic id cannot contain `*`).
    static let allClinics = "*"

    /// Records the open month's tag. The upsert writes the row whether or not the tag exists, so
    /// enrolment does the same work either way, and no multiplicity is kept.
    static func markUniquePerson(_ db: Database, _ mark: UniquePersonMark, tag: [UInt8]) throws {
        try db.execute(
            sql: """
                INSERT INTO unique_person_seen (month, category, tag) VALUES (?, ?, ?)
                ON CONFLICT (month, category, tag) DO UPDATE SET tag = excluded.tag
                """, arguments: [mark.month.description, mark.category, Data(tag)])
    }

    public func foldUniquePersons(before month: Month) async throws(StorageError) -> Int {
        let cutoff = month.description
        // Most calls (every sweep, every statistics request) find nothing to fold: a read
        // answers that without a write transaction and its fsync.
        let pending = try await read { db in
            try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM unique_person_seen WHERE month < ?)", arguments: [cutoff]) ?? false
        }
        guard pending else { return 0 }
        let folded = try await write { db -> Int in
            let cells = try Row.fetchAll(
                db,
                sql: """
                    SELECT month, category, count(*) FROM unique_person_seen WHERE month < ? GROUP BY month, category
                    """, arguments: [cutoff])
            guard !cells.isEmpty else { return 0 }
            for cell in cells {
                try db.execute(
                    sql: """
                        INSERT INTO counter (month, category, clinic, metric, value) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (month, category, clinic, metric) DO UPDATE SET value = value + excluded.value
                        """,
                    arguments: [cell[0] as String, cell[1] as String, Self.allClinics, CounterMetric.uniquePersons, cell[2] as Int])
            }
            try db.execute(sql: "DELETE FROM unique_person_seen WHERE month < ?", arguments: [cutoff])
            return cells.count
        }
        // The deleted tags must not linger in the WAL (secure_delete zeroes the pages).
        if folded > 0 { _ = await writer.truncateWAL() }
        return folded
    }

    public func uniquePersons(from: Month, to: Month) async throws(StorageError) -> [UniquePersonCount] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT month, category, value FROM counter
                    WHERE month >= ? AND month <= ? AND clinic = ? AND metric = ? ORDER BY month, category
                    """, arguments: [from.description, to.description, Self.allClinics, CounterMetric.uniquePersons]
            ).compactMap { row in
                guard let month = Month(row[0] as String) else { return nil }
                return UniquePersonCount(month: month, category: row[1], value: row[2])
            }
        }
    }

    /// How many unique-person tags the open months hold (tests and diagnostics).
    public func openUniquePersonTags() async throws(StorageError) -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM unique_person_seen") ?? 0 }
    }

    public func storedRelease(query: String) async throws(StorageError) -> StoredRelease? {
        try await read { db in try Self.release(db, query: query) }
    }

    /// A month is held to the smaller of the budget configured now and the one configured when
    /// its first noisy figure was released (`cap_micro`, recorded by its first charge), so
    /// raising `monthly_budget` later never lets a month spend more than was promised for it
    /// (docs/CRYPTO.md §Differential privacy).
    public func storeRelease(_ release: StoredRelease, months: [Month], budgetMicro: Int) async throws(StorageError) -> StoredRelease {
        try await write { db in
            if let existing = try Self.release(db, query: release.query) { return existing }
            for month in months {
                let row = try Row.fetchOne(
                    db, sql: "SELECT spent_micro, cap_micro FROM privacy_budget WHERE month = ?",
                    arguments: [month.description])
                let spent: Int = row?[0] ?? 0
                let cap: Int? = row?[1]
                let limit = min(cap ?? budgetMicro, budgetMicro)
                guard spent + release.epsilonMicro <= limit else {
                    let held =
                        cap.map {
                            $0 < budgetMicro
                                ? " (the budget configured when its first figure was released; monthly_budget is \(Self.decimal(budgetMicro)) now)"
                                : ""
                        } ?? ""
                    throw StorageError.privacyBudgetSpent(
                        message: "the privacy budget of \(month) is spent (ε \(Self.decimal(spent)) of \(Self.decimal(limit)) used\(held); "
                            + "this release needs \(Self.decimal(release.epsilonMicro))); stored releases can still be read again by repeating their exact query"
                    )
                }
            }
            for month in months {
                try db.execute(
                    sql: """
                        INSERT INTO privacy_budget (month, spent_micro, cap_micro) VALUES (?, ?, ?)
                        ON CONFLICT (month) DO UPDATE SET spent_micro = spent_micro + excluded.spent_micro,
                            cap_micro = coalesce(cap_micro, excluded.cap_micro)
                        """, arguments: [month.description, release.epsilonMicro, budgetMicro])
            }
            try db.execute(
                sql: "INSERT INTO stats_release (query, released_on, epsilon_micro, body) VALUES (?, ?, ?, ?)",
                arguments: [release.query, release.releasedOn.description, release.epsilonMicro, Data(release.body)])
            return release
        }
    }

    /// Every month's budget: spent and cap, oldest first.
    public func privacyBudgets() async throws(StorageError) -> [PrivacyBudgetMonth] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT month, spent_micro, cap_micro FROM privacy_budget ORDER BY month").compactMap { row in
                guard let month = Month(row[0] as String) else { return nil }
                return PrivacyBudgetMonth(month: month, spentMicro: row[1], capMicro: row[2])
            }
        }
    }

    /// Records `settings` as in force from `day` when they differ from the last recorded ones;
    /// returns whether they did (the caller audits the change).
    public func recordPrivacySettings(_ settings: PrivacySettings, on day: Day) async throws(StorageError) -> Bool {
        try await write { db in
            if let last = try Self.privacySettings(db).last, last.settings == settings { return false }
            try db.execute(
                sql: "INSERT INTO privacy_setting (recorded_on, privacy, epsilon_micro, budget_micro) VALUES (?, ?, ?, ?)",
                arguments: [day.description, settings.privacy ? 1 : 0, settings.epsilonMicro, settings.budgetMicro])
            return true
        }
    }

    /// The privacy settings' history, oldest first.
    public func privacySettingsHistory() async throws(StorageError) -> [PrivacySettingsChange] {
        try await read { db in try Self.privacySettings(db) }
    }

    static func privacySettings(_ db: Database) throws -> [PrivacySettingsChange] {
        try Row.fetchAll(db, sql: "SELECT recorded_on, privacy, epsilon_micro, budget_micro FROM privacy_setting ORDER BY seq").map { row in
            guard let day = Day(row[0] as String) else { throw StorageError.tampered(what: "privacy setting") }
            return PrivacySettingsChange(
                recordedOn: day, settings: PrivacySettings(privacy: (row[1] as Int) == 1, epsilonMicro: row[2], budgetMicro: row[3]))
        }
    }

    public func privacyBudgetSpent(from: Month, to: Month) async throws(StorageError) -> [Month: Int] {
        try await read { db in
            var spent: [Month: Int] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT month, spent_micro FROM privacy_budget WHERE month >= ? AND month <= ?",
                arguments: [from.description, to.description])
            {
                if let month = Month(row[0] as String) { spent[month] = row[1] }
            }
            return spent
        }
    }

    static func release(_ db: Database, query: String) throws -> StoredRelease? {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT released_on, epsilon_micro, body FROM stats_release WHERE query = ?",
                arguments: [query])
        else { return nil }
        guard let day = Day(row[0] as String) else { throw StorageError.tampered(what: "stats release") }
        return StoredRelease(query: query, releasedOn: day, epsilonMicro: row[1], body: Array(row[2] as Data))
    }

    static func decimal(_ micro: Int) -> String { PrivacySettings.decimal(micro) }
}
