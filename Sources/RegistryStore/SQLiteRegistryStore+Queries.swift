import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryProtocol

extension SQLiteRegistryStore {
    /// Each row's case link and subject MACs are checked (docs/CRYPTO.md §Authenticated
    /// columns), so a due date or a link changed behind anonreg's back fails the list with an
    /// integrity error rather than hand a clinic another subject's handle or a false date.
    public func casesDue(clinic: ClinicID, before day: Day) async throws(StorageError) -> [DueCase] {
        let rows = try await read { db in
            // A cursor: each row is decoded from the statement as it steps, never copied into a
            // Row of its own first.
            let cursor = try Row.fetchCursor(
                db,
                sql: """
                    SELECT \(SubjectRow.selectColumnsWithoutSummary), \(CaseLinkRow.selectColumns), c.sealed_handle
                    FROM case_link c JOIN subject s ON s.id = c.subject_id
                    WHERE c.clinic = ? AND s.next_due IS NOT NULL AND s.next_due < ?
                    """, arguments: [clinic.rawValue, day.description])
            var due: [DueRow<SubjectRow, CaseLinkRow>] = []
            while let row = try cursor.next() {
                due.append(
                    DueRow(
                        subject: try SubjectRow(row: row), link: try CaseLinkRow(row: row, offset: SubjectRow.columnCount),
                        sealedHandle: try RowCells(row: row, what: "case link row").blob(SubjectRow.columnCount + CaseLinkRow.columnCount)))
            }
            return due
        }
        // Checked and opened after the read has given back its reader connection. The keyring
        // is read now, after the rows (SealedSubjectRow.dek).
        return try DueList.open(rows, keyring: keyring, erased: erased, slab: dekSlab)
    }

    public func count(_ counters: [CounterIncrement]) async throws(StorageError) {
        guard !counters.isEmpty else { return }
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        try await write { db in
            try Self.apply(db, counters)
            try Self.auditEffect(db, recorder: recorder, checkpointEvery: every, keyring: keyring)
        }
    }

    public func counters(from: Month, to: Month) async throws(StorageError) -> [CounterRow] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT month, category, clinic, metric, value FROM counter
                    WHERE month >= ? AND month <= ? AND clinic != '*' ORDER BY month, category, clinic, metric
                    """, arguments: [from.description, to.description]
            ).compactMap { row in
                guard let month = Month(row[0] as String), let clinic = ClinicID(row[2] as String) else { return nil }
                return CounterRow(key: CounterKey(month: month, category: row[1], clinic: clinic, metric: row[3]), value: row[4])
            }
        }
    }

    public func kekUsage() async throws(StorageError) -> [Int: Int] {
        try await read { db in
            var usage: [Int: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT kek_version, count(*) FROM subject GROUP BY kek_version") {
                usage[row[0]] = row[1]
            }
            return usage
        }
    }

    /// `kekUsage` counted in the writer, after every write queued before it: what retire must
    /// see (an enrolment in flight under the old primary is counted).
    public func kekUsageAfterPendingWrites() async throws(StorageError) -> [Int: Int] {
        try await write { db in
            var usage: [Int: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT kek_version, count(*) FROM subject GROUP BY kek_version") {
                usage[row[0]] = row[1]
            }
            return usage
        }
    }

    /// How many subjects exist (for tests, statistics of the store itself and benchmarks).
    public func subjectCount() async throws(StorageError) -> Int {
        try await read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0 }
    }

    /// Adds counter increments in the caller's transaction.
    static func apply(_ db: Database, _ counters: [CounterIncrement]) throws {
        for increment in counters where increment.by != 0 {
            try db.executeCached(
                """
                INSERT INTO counter (month, category, clinic, metric, value) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (month, category, clinic, metric) DO UPDATE SET value = value + excluded.value
                """,
                [
                    increment.key.month.description, increment.key.category, increment.key.clinic.rawValue,
                    increment.key.metric, increment.by,
                ])
        }
    }
}
