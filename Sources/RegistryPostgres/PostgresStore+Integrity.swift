import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

/// The full integrity check on PostgreSQL (docs/CRYPTO.md §Authenticated columns): the same
/// scan as SQLite's (`IntegrityScan`), read in batches while requests go on, then each failing
/// subject erased and each failing case link removed in a write of its own, after a second look
/// under the row's lock.
extension PostgresStore {
    public func checkIntegrity(actor: String) async throws(StorageError) -> IntegrityReport {
        try await checkIntegrity(actor: actor, batch: 1000)
    }

    func checkIntegrity(actor: String, batch: Int) async throws(StorageError) -> IntegrityReport {
        var report = IntegrityReport()
        var after: Int64 = .min
        var badSubjects: [Int64] = []
        var badLinks: [Int64] = []
        let logger = self.logger
        while true {
            let from = after
            let (scanned, last, links, failedSubjects, failedLinks) = try await read { connection in
                try await self.scanIntegrity(connection, after: from, limit: batch, logger: logger)
            }
            report.subjectsChecked += scanned
            report.caseLinksChecked += links
            badSubjects += failedSubjects
            badLinks += failedLinks
            guard let last, scanned == batch else { break }
            after = last
        }
        // A mass failure is a wrong keyring or a fault, not tampering: nothing is erased.
        if badSubjects.count + badLinks.count > IntegrityScan.brake(checked: report.subjectsChecked) {
            report.suspended = badSubjects.count + badLinks.count
            return report
        }
        for id in badLinks where try await removeCaseLinkFailingIntegrity(id: id, actor: actor) {
            report.caseLinksRemoved += 1
        }
        for id in badSubjects where try await eraseFailingIntegrity(SubjectReference(rawValue: id), actor: actor) {
            report.subjectsErased += 1
        }
        return report
    }

    /// One batch: subjects with id > `after`, their record chains and their case links.
    func scanIntegrity(_ connection: PostgresConnection, after: Int64, limit: Int, logger: Logger) async throws
        -> (scanned: Int, last: Int64?, links: Int, failedSubjects: [Int64], failedLinks: [Int64])
    {
        var scan = IntegrityScan(keyring: keyring, erased: erased)
        for row in try await connection.rows(
            "SELECT \(unescaped: PostgresSubjectRow.selectColumns) FROM subject s WHERE s.id > \(after) ORDER BY s.id LIMIT \(Int64(limit))",
            logger: logger)
        {
            let cells = row.makeRandomAccess()
            scan.subject(id: try cells[0].decode(Int64.self)) { try PostgresSubjectRow(cells) }
        }
        guard let first = scan.order.first, let last = scan.order.last else { return (0, nil, 0, [], []) }
        let records = try await connection.stream(
            """
            SELECT subject_id, id, kind, schema_version FROM record WHERE subject_id BETWEEN \(first) AND \(last) ORDER BY subject_id, id
            """, logger: logger)
        for try await (subjectID, id, kind, schema) in records.decode((Int64, Int64, String, Int32).self) {
            try scan.record(subjectID: subjectID, id: id, kind: kind, schemaVersion: Int64(schema))
        }
        for row in try await connection.rows(
            """
            SELECT \(unescaped: PostgresCaseLinkRow.selectColumns), c.subject_id FROM case_link c
            WHERE c.subject_id BETWEEN \(first) AND \(last) ORDER BY c.id
            """, logger: logger)
        {
            let cells = row.makeRandomAccess()
            scan.link(id: try cells[0].decode(Int64.self), subjectID: try cells[PostgresCaseLinkRow.columnCount].decode(Int64.self)) {
                try PostgresCaseLinkRow(cells)
            }
        }
        let failed = scan.failedSubjects()
        return (scan.order.count, last, scan.links, failed, scan.failedLinks)
    }

    /// Erases the subject if it still fails under its row lock. Returns whether it did.
    func eraseFailingIntegrity(_ reference: SubjectReference, actor: String) async throws(StorageError) -> Bool {
        let recorder = AuditRecorder(AuditRecorder.Action(actor: actor, action: "erase-integrity"))
        let logger = self.logger
        // Installed as the task's recorder, so that a batch run again after a deadlock puts its
        // "appended" mark back (PostgresGroupCommit.swift) and the erasure is never committed
        // without its entry.
        let erased: Result<Bool, StorageError> = await AuditRecorder.$current.withValue(recorder) {
            do throws(StorageError) {
                return .success(
                    try await write { connection in
                        guard try await self.lockSubject(connection, reference, logger: logger) else { return false }
                        let again = try await self.scanIntegrity(connection, after: reference.rawValue - 1, limit: 1, logger: logger)
                        guard again.last == reference.rawValue, again.failedSubjects.contains(reference.rawValue) else { return false }
                        return try await self.eraseFailingRow(connection, id: reference.rawValue, recorder: recorder, logger: logger)
                    })
            } catch {
                return .failure(error)
            }
        }
        return try erased.get()
    }

    /// The erasure of a subject row that failed its integrity check, as on SQLite
    /// (`SQLiteRegistryStore.eraseFailingRow`; docs/CRYPTO.md §Authenticated columns, "Erasing a
    /// row that fails"): ledgered only when the ledger already names the authentic row, since a
    /// writer without keys can make any row fail; the audit links and `sid` of a row whose MAC
    /// fails are not trusted and not touched.
    func eraseFailingRow(_ connection: PostgresConnection, id: Int64, recorder: AuditRecorder?, logger: Logger) async throws -> Bool {
        guard let read = try await subjectRow(connection, SubjectReference(rawValue: id), forUpdate: true, logger: logger) else {
            return false
        }
        let keyring = self.keyring
        let authentic: PostgresSubjectRow? = (try? read()).flatMap { row in
            (try? row.authenticate(keyring: keyring, erased: nil)) != nil ? row : nil
        }
        if let row = authentic {
            let named = try erased.contains(ErasureLedger(keyring: keyring).reference(sid: row.sid))
            if !named { recorder?.note("its records failed: nothing ledgered, a backup brings back its last authentic state") }
            try await erase(
                connection, subject: row, counters: [], recorder: recorder, checkpointEvery: auditCheckpointEvery, ledger: named,
                logger: logger)
            return true
        }
        let deleted = try await connection.rows("DELETE FROM subject WHERE id = \(id) RETURNING id", logger: logger)
        guard deleted.count == 1 else { throw StorageError.database(reason: "erasure deleted \(deleted.count) subjects") }
        recorder?.markErased()
        recorder?.note("row not authenticated: its sid is not trusted, nothing ledgered")
        try await Self.auditEffect(connection, recorder: recorder, checkpointEvery: auditCheckpointEvery, keyring: keyring, logger: logger)
        return true
    }

    /// Removes a case link whose MAC fails (a handle redirected to another subject): the clinic's
    /// handle then finds nothing; the subject stays reachable by its code.
    func removeCaseLinkFailingIntegrity(id: Int64, actor: String) async throws(StorageError) -> Bool {
        let keyring = self.keyring
        let every = auditCheckpointEvery
        let logger = self.logger
        return try await write { connection in
            guard
                let row = try await connection.row(
                    """
                    SELECT \(unescaped: PostgresCaseLinkRow.selectColumns), s.sid FROM case_link c JOIN subject s ON s.id = c.subject_id
                    WHERE c.id = \(id) FOR UPDATE OF c, s
                    """, logger: logger)
            else { return false }
            let cells = row.makeRandomAccess()
            let sid = try cells[PostgresCaseLinkRow.columnCount].bytes()
            if (try? PostgresCaseLinkRow(cells).authenticate(sid: sid, keyring: keyring)) != nil { return false }
            try await connection.send("DELETE FROM case_link WHERE id = \(id)", logger: logger)
            try await Self.appendChained(
                connection, event: AuditEvent(actor: actor, action: "remove-case-link-integrity", result: "ok", subjectReference: nil),
                checkpointEvery: every, keyring: keyring, logger: logger)
            return true
        }
    }
}
