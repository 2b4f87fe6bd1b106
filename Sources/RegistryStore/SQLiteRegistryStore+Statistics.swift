import Foundation
import GRDB
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
        try db.execute(sql: """
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
            let cells = try Row.fetchAll(db, sql: """
                SELECT month, category, count(*) FROM unique_person_seen WHERE month < ? GROUP BY month, category
                """, arguments: [cutoff])
            guard !cells.isEmpty else { return 0 }
            for cell in cells {
                try db.execute(sql: """
                    INSERT INTO counter (month, category, clinic, metric, value) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (month, category, clinic, metric) DO UPDATE SET value = value + excluded.value
                    """, arguments: [cell[0] as String, cell[1] as String, Self.allClinics, CounterMetric.uniquePersons, cell[2] as Int])
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
            try Row.fetchAll(db, sql: """
                SELECT month, category, value FROM counter
                WHERE month >= ? AND month <= ? AND clinic = ? AND metric = ? ORDER BY month, category
                """, arguments: [from.description, to.description, Self.allClinics, CounterMetric.uniquePersons]).compactMap { row in
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

    public func storeRelease(_ release: StoredRelease, months: [Month], budgetMicro: Int) async throws(StorageError) -> StoredRelease {
        try await write { db in
            if let existing = try Self.release(db, query: release.query) { return existing }
            for month in months {
                let spent = try Int.fetchOne(db, sql: "SELECT spent_micro FROM privacy_budget WHERE month = ?",
                                             arguments: [month.description]) ?? 0
                guard spent + release.epsilonMicro <= budgetMicro else {
                    throw StorageError.rejected(
                        code: "privacy_budget_spent",
                        message: "the privacy budget of \(month) is spent (ε \(Self.decimal(spent)) of \(Self.decimal(budgetMicro)) used; "
                            + "this release needs \(Self.decimal(release.epsilonMicro))); stored releases can still be read again by repeating their exact query")
                }
            }
            for month in months {
                try db.execute(sql: """
                    INSERT INTO privacy_budget (month, spent_micro) VALUES (?, ?)
                    ON CONFLICT (month) DO UPDATE SET spent_micro = spent_micro + excluded.spent_micro
                    """, arguments: [month.description, release.epsilonMicro])
            }
            try db.execute(sql: "INSERT INTO stats_release (query, released_on, epsilon_micro, body) VALUES (?, ?, ?, ?)",
                           arguments: [release.query, release.releasedOn.description, release.epsilonMicro, Data(release.body)])
            return release
        }
    }

    public func privacyBudgetSpent(from: Month, to: Month) async throws(StorageError) -> [Month: Int] {
        try await read { db in
            var spent: [Month: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT month, spent_micro FROM privacy_budget WHERE month >= ? AND month <= ?",
                                        arguments: [from.description, to.description]) {
                if let month = Month(row[0] as String) { spent[month] = row[1] }
            }
            return spent
        }
    }

    static func release(_ db: Database, query: String) throws -> StoredRelease? {
        guard let row = try Row.fetchOne(db, sql: "SELECT released_on, epsilon_micro, body FROM stats_release WHERE query = ?",
                                         arguments: [query]) else { return nil }
        guard let day = Day(row[0] as String) else { throw StorageError.tampered(what: "stats release") }
        return StoredRelease(query: query, releasedOn: day, epsilonMicro: row[1], body: Array(row[2] as Data))
    }

    /// Micro-ε as a decimal (1500000 → "1.5").
    static func decimal(_ micro: Int) -> String {
        let whole = micro / 1_000_000
        var fraction = String(micro % 1_000_000)
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return fraction.isEmpty ? String(whole) : "\(whole).\(fraction)"
    }
}
