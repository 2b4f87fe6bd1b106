import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryProtocol

extension PostgresStore {
    /// Each row's case link and subject MACs are checked (docs/CRYPTO.md §Authenticated
    /// columns), so a due date or a link changed behind anonreg's back fails the list with an
    /// integrity error rather than hand a clinic another subject's handle or a false date.
    public func casesDue(clinic: ClinicID, before day: Day) async throws(StorageError) -> [DueCase] {
        let logger = self.logger
        let rows = try await read { connection in
            let result = try await connection.rows(
                """
                SELECT \(unescaped: PostgresSubjectRow.selectColumnsWithoutSummary), \(unescaped: PostgresCaseLinkRow.selectColumns), c.sealed_handle
                FROM case_link c JOIN subject s ON s.id = c.subject_id
                WHERE c.clinic = \(clinic.rawValue) AND s.next_due IS NOT NULL AND s.next_due < \(day.description)
                """, logger: logger)
            var due: [DueRow<PostgresSubjectRow, PostgresCaseLinkRow>] = []
            due.reserveCapacity(result.count)
            for row in result {
                let cells = row.makeRandomAccess()
                due.append(
                    DueRow(
                        subject: try PostgresSubjectRow(cells),
                        link: try PostgresCaseLinkRow(cells, offset: PostgresSubjectRow.columnCount),
                        sealedHandle: try cells[PostgresSubjectRow.columnCount + PostgresCaseLinkRow.columnCount].bytes()))
            }
            return due
        }
        // Checked and opened after the read has ended its transaction and given back its
        // connection. The keyring is read now, after the rows (SealedSubjectRow.dek).
        return try DueList.open(rows, keyring: keyring, erased: erased, slab: dekSlab)
    }

    /// Adds counts that belong to no subject, with the request's audit entry.
    public func count(_ counters: [CounterIncrement]) async throws(StorageError) {
        guard !counters.isEmpty else { return }
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let logger = self.logger
        try await write { connection in
            try await Self.apply(connection, counters, logger: logger)
            try await Self.auditEffect(connection, recorder: recorder, checkpointEvery: every, keyring: keyring, logger: logger)
        }
    }

    /// Every counter of the months `from` through `to` (closed months' unique persons aside).
    public func counters(from: Month, to: Month) async throws(StorageError) -> [CounterRow] {
        let logger = self.logger
        return try await read { connection in
            var counters: [CounterRow] = []
            for row in try await connection.rows(
                """
                SELECT month, category, clinic, metric, value FROM counter
                WHERE month >= \(from.description) AND month <= \(to.description) AND clinic != '*'
                ORDER BY month, category, clinic, metric
                """, logger: logger)
            {
                let (month, category, clinic, metric, value) = try row.decode((String, String, String, String, Int64).self)
                guard let month = Month(month), let clinic = ClinicID(clinic) else { continue }
                counters.append(
                    CounterRow(key: CounterKey(month: month, category: category, clinic: clinic, metric: metric), value: Int(value)))
            }
            return counters
        }
    }

    /// How many subjects exist (tests, and the store's own statistics).
    public func subjectCount() async throws(StorageError) -> Int {
        let logger = self.logger
        return try await read { connection in
            Int(try await connection.row("SELECT count(*) FROM subject", logger: logger)?.decode(Int64.self) ?? 0)
        }
    }

    /// Adds counter increments in the caller's transaction, in one statement, in key order
    /// (PostgreSQL inserts a VALUES list row by row, in order): two transactions that touch the
    /// same counters lock them in the same order, and so never deadlock. Increments of the same
    /// key are added up first (an upsert may touch a row once per statement): only their sum
    /// is checked against `value >= 0`, and a key whose increments cancel out writes nothing.
    /// Every increment anonreg makes is +1.
    static func apply(_ connection: PostgresConnection, _ counters: [CounterIncrement], logger: Logger) async throws {
        var sums: [CounterKey: Int] = [:]
        for increment in counters {
            let (sum, overflow) = sums[increment.key, default: 0].addingReportingOverflow(increment.by)
            guard !overflow else { throw StorageError.database(reason: "counter increments beyond a 64-bit count") }
            sums[increment.key] = sum
        }
        let ordered = sums.filter { $0.value != 0 }.sorted {
            ($0.key.month.description, $0.key.category, $0.key.clinic.rawValue, $0.key.metric)
                < ($1.key.month.description, $1.key.category, $1.key.clinic.rawValue, $1.key.metric)
        }
        guard !ordered.isEmpty else { return }
        var binds = PostgresBindings(capacity: 5 * ordered.count)
        var values: [String] = []
        for (key, by) in ordered {
            let first = binds.count + 1
            binds.append(key.month.description)
            binds.append(key.category)
            binds.append(key.clinic.rawValue)
            binds.append(key.metric)
            binds.append(Int64(by))
            values.append("($\(first), $\(first + 1), $\(first + 2), $\(first + 3), $\(first + 4))")
        }
        try await connection.send(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO counter (month, category, clinic, metric, value) VALUES \(values.joined(separator: ", "))
                    ON CONFLICT (month, category, clinic, metric) DO UPDATE SET value = counter.value + excluded.value
                    """, binds: binds), logger: logger)
    }

    /// Records the open month's unique-person tag. The upsert writes the row whether or not the
    /// tag exists, so enrolment does the same work either way, and no multiplicity is kept.
    static func markUniquePerson(_ connection: PostgresConnection, _ mark: UniquePersonMark, tag: [UInt8], logger: Logger) async throws {
        try await connection.send(
            """
            INSERT INTO unique_person_seen (month, category, tag) VALUES (\(mark.month.description), \(mark.category), \(tag.bytea))
            ON CONFLICT (month, category, tag) DO UPDATE SET tag = excluded.tag
            """, logger: logger)
    }
}
