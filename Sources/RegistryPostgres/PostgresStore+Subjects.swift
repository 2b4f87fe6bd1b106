import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

/// Subjects, cases and changes on PostgreSQL: the same intents, formats and checks as
/// `SQLiteRegistryStore+Subjects.swift`, with the database settling races between nodes
/// (docs/STORAGE.md §PostgreSQL, "Several nodes").
extension PostgresStore {
    public func enrol(_ enrolment: Enrolment) async throws(StorageError) -> EnrolmentReceipt {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let logger = self.logger
        let code: PatientCode
        do { code = try PatientCode.generate() } catch { throw .database(reason: "random bytes unavailable") }
        let codeText = code.formatted()
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        let sid = try SubjectKeys.newSID()
        let dekBox = DEKBox(try SubjectKeys.newDEK(slab: dekSlab))
        let handle = try SubjectKeys.newCaseHandle()
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        // The open month's unique-person tag (docs/CRYPTO.md §Unique persons), only with
        // statistics consent; nothing else derived from the linkage value is kept.
        let uniqueTag: (mark: UniquePersonMark, tag: [UInt8])? = try enrolment.uniquePerson.flatMap { (mark) throws(StorageError) in
            try enrolment.linkage.map { (value) throws(StorageError) in
                (
                    mark,
                    try SubjectKeys.uniquePersonTag(
                        linkageHash: try SubjectKeys.linkageHash(value, keyring: keyring), month: mark.month, keyring: keyring)
                )
            }
        }
        let view = try await write { connection in
            // The primary KEK is read inside the transaction, which holds the KEK lock shared
            // until it commits: `kekUsageAfterPendingWrites` counts after it (PostgresStore+
            // KeyMaintenance.swift), so a retire never misses a key wrapped under an old primary.
            try await connection.send("SELECT pg_advisory_xact_lock_shared(\(Self.kekLockKey))", logger: logger)
            let keyring = self.keyring
            let primary = try await self.registryPrimaryKEK(connection, keyring: keyring, logger: logger)
            let wrapped = try SubjectKeys.wrap(dekBox.key, sid: sid, version: primary.version, kek: primary.key)
            let id = try await Self.nextIDs(connection, table: "subject", count: 1, logger: logger)[0]
            var subject = PostgresSubjectRow(
                id: id, sid: sid, codeIndex: codeIndex, wrappedDEK: wrapped, kekVersion: primary.version, columns: enrolment.columns)
            subject.rowMAC = try subject.expectedMAC(keyring: keyring)
            try await connection.send(
                """
                INSERT INTO subject (id, sid, code_index, wrapped_dek, kek_version, status, next_due, review_on, records, records_head, row_mac)
                OVERRIDING SYSTEM VALUE VALUES (\(id), \(sid.bytea), \(codeIndex.bytea), \(wrapped.bytea), \(Int32(primary.version)),
                    \(enrolment.columns.status.rawValue), \(enrolment.columns.nextDue?.description),
                    \(enrolment.columns.reviewOn?.description), 0, \(subject.recordsHead.bytea), \(subject.rowMAC.bytea))
                """, logger: logger)
            try await Self.insertCase(
                connection, subject: subject, clinic: enrolment.clinic, handle: handle, handleIndex: handleIndex, dek: dekBox.key,
                keyring: keyring, logger: logger)
            try await subject.append(connection, enrolment.records, dek: dekBox.key, keyring: keyring, logger: logger)
            try await subject.sealSummary(connection, enrolment.summary, dek: dekBox.key, logger: logger)
            try await subject.save(connection, keyring: keyring, logger: logger)
            try await Self.apply(connection, enrolment.counters, logger: logger)
            if let uniqueTag { try await Self.markUniquePerson(connection, uniqueTag.mark, tag: uniqueTag.tag, logger: logger) }
            let view = try await subject.view(connection, keyring: keyring, dek: dekBox.key, recorder: recorder, logger: logger)
            try await Self.auditEffect(connection, recorder: recorder, checkpointEvery: every, keyring: keyring, logger: logger)
            return view
        }
        return EnrolmentReceipt(caseHandle: handle, code: codeText, view: view)
    }

    public func subject(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView {
        let recorder = AuditRecorder.current
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        let logger = self.logger
        return try await read { connection in
            guard let subject = try await self.subject(connection, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            return try await subject.view(connection, keyring: self.keyring, slab: self.dekSlab, recorder: recorder, logger: logger)
        }
    }

    /// docs/STORAGE.md §Summary: one row and its MACs, a count of its record index entries, one
    /// key unwrapped, one summary opened, whatever the length of the history. One statement,
    /// sent without BEGIN and COMMIT (`readOneRow`).
    public func summary(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView {
        let recorder = AuditRecorder.current
        let opened = try await openedWithExtent(case: handle, clinic: clinic)
        return try opened.subject.summaryView(extent: opened.records, keyring: keyring, slab: dekSlab, recorder: recorder)
    }

    /// docs/STORAGE.md §Changes: the subject is opened in a read snapshot, the domain decides,
    /// and `commit` checks, under the subject row's lock, that nothing changed since. Without
    /// the history, the row, its extent and its stamp come from one statement.
    public func openForChange(case handle: CaseHandle, clinic: ClinicID, history: Bool) async throws(StorageError) -> OpenedSubject {
        let recorder = AuditRecorder.current
        guard history else {
            let opened = try await openedWithExtent(case: handle, clinic: clinic)
            let view = try opened.subject.summaryView(extent: opened.records, keyring: keyring, slab: dekSlab, recorder: recorder)
            return OpenedSubject(view: view, stamp: opened.stamp)
        }
        let query = SubjectWithExtentStatement(handleIndex: try SubjectKeys.handleIndex(handle, keyring: keyring), clinic: clinic.rawValue)
        let logger = self.logger
        return try await read { connection in
            guard let row = try await connection.row(query, logger: logger) else { throw StorageError.caseNotFound }
            let opened = try self.subjectWithExtent(row)
            let view = try await opened.subject.view(
                connection, keyring: self.keyring, slab: self.dekSlab, recorder: recorder, logger: logger)
            return OpenedSubject(view: view, stamp: opened.stamp)
        }
    }

    /// The subject behind a clinic's handle with its extent and stamp, read in one statement
    /// on its own (`readOneRow`), its MACs checked.
    func openedWithExtent(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectWithExtent {
        let query = SubjectWithExtentStatement(handleIndex: try SubjectKeys.handleIndex(handle, keyring: keyring), clinic: clinic.rawValue)
        guard let row = try await readOneRow(query) else { throw .caseNotFound }
        do { return try subjectWithExtent(row) } catch { throw Self.storageError(error) }
    }

    /// The subject row is locked (`FOR UPDATE`) before its stamp is compared: a commit from
    /// another node either finished before (the stamp differs: `.subjectChanged`) or waits for
    /// this one and then finds the stamp changed. No check-up is lost or doubled.
    public func commit(_ change: SubjectChange, case handle: CaseHandle, clinic: ClinicID, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError)
    {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        let logger = self.logger
        try await write { connection in
            try await self.refuseWritesIfBehind(connection, logger: logger)
            guard var subject = try await self.subject(connection, handleIndex: handleIndex, clinic: clinic, forUpdate: true) else {
                throw StorageError.caseNotFound
            }
            let current = try await subject.stamp(connection, drawing: change.append.count, logger: logger)
            guard current.stamp == stamp else { throw StorageError.subjectChanged }
            let keyring = self.keyring
            let dek = try subject.dek(keyring: keyring, slab: self.dekSlab)
            try subject.recordReference(keyring: keyring, in: recorder)
            try await subject.append(connection, change.append, ids: current.recordIDs, dek: dek, keyring: keyring, logger: logger)
            subject.columns = change.columns
            try await subject.sealSummary(connection, change.summary, dek: dek, logger: logger)
            try await subject.save(connection, keyring: keyring, logger: logger)
            try await Self.apply(connection, change.counters, logger: logger)
            try await Self.auditEffect(
                connection, recorder: recorder, checkpointEvery: every, keyring: keyring, lockedSID: subject.sid, logger: logger)
        }
    }

    /// A link on one node and a link of the same code to the same clinic on another wait for
    /// each other on the subject row's lock; the second finds the first's case and hands back
    /// the same handle (and the schema's UNIQUE (clinic, subject_id) stops any other outcome).
    public func link(code: String, clinic: ClinicID, record: NewRecord, counters: [CounterIncrement]) async throws(StorageError)
        -> CaseHandle
    {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        let fresh = try SubjectKeys.newCaseHandle()
        let freshIndex = try SubjectKeys.handleIndex(fresh, keyring: keyring)
        let logger = self.logger
        return try await write { connection in
            try await self.refuseWritesIfBehind(connection, logger: logger)
            guard var subject = try await self.subject(connection, codeIndex: codeIndex, forUpdate: true) else {
                throw StorageError.codeNotFound
            }
            let keyring = self.keyring
            try subject.recordReference(keyring: keyring, in: recorder)
            let dek = try subject.dek(keyring: keyring, slab: self.dekSlab)
            if let existing = try await connection.row(
                """
                SELECT \(unescaped: PostgresCaseLinkRow.selectColumns), c.sealed_handle FROM case_link c
                WHERE c.subject_id = \(subject.id) AND c.clinic = \(clinic.rawValue)
                """, logger: logger)
            {
                // The clinic already holds a case: hand the same handle back.
                let cells = existing.makeRandomAccess()
                let link = try PostgresCaseLinkRow(cells)
                try link.authenticate(sid: subject.sid, keyring: keyring)
                return try CaseHandleSeal.open(
                    try cells[PostgresCaseLinkRow.columnCount].bytes(), sid: subject.sid, linkID: link.id,
                    handleIndex: link.handleIndex, dek: dek, keyring: keyring)
            }
            // The summary is bound to the history's length and head: opened under the old,
            // sealed under the new, after the record count is checked.
            let extent = try await subject.recordExtent(connection, logger: logger)
            try subject.checkExtent(count: extent.count)
            let summary = try subject.openSummary(newestRecord: extent.newest, dek: dek)
            try await Self.insertCase(
                connection, subject: subject, clinic: clinic, handle: fresh, handleIndex: freshIndex, dek: dek, keyring: keyring,
                logger: logger)
            try await subject.append(connection, [record], dek: dek, keyring: keyring, logger: logger)
            try await subject.sealSummary(connection, summary, dek: dek, logger: logger)
            try await subject.save(connection, keyring: keyring, logger: logger)
            try await Self.apply(connection, counters, logger: logger)
            try await Self.auditEffect(connection, recorder: recorder, checkpointEvery: every, keyring: keyring, logger: logger)
            return fresh
        }
    }

    public func subject(code: String) async throws(StorageError) -> SubjectView {
        let recorder = AuditRecorder.current
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        let logger = self.logger
        return try await read { connection in
            guard let subject = try await self.subject(connection, codeIndex: codeIndex) else { throw StorageError.codeNotFound }
            return try await subject.view(connection, keyring: self.keyring, slab: self.dekSlab, recorder: recorder, logger: logger)
        }
    }

    public func reissueCode(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> String {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        let code: PatientCode
        do { code = try PatientCode.generate() } catch { throw .database(reason: "random bytes unavailable") }
        let codeText = code.formatted()
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        let logger = self.logger
        try await write { connection in
            try await self.refuseWritesIfBehind(connection, logger: logger)
            guard var subject = try await self.subject(connection, handleIndex: handleIndex, clinic: clinic, forUpdate: true) else {
                throw StorageError.caseNotFound
            }
            let keyring = self.keyring
            try subject.recordReference(keyring: keyring, in: recorder)
            subject.codeIndex = codeIndex
            try await subject.save(connection, keyring: keyring, logger: logger)
            try await Self.auditEffect(connection, recorder: recorder, checkpointEvery: every, keyring: keyring, logger: logger)
        }
        return codeText
    }

    // MARK: - Lookups

    /// The subject behind a clinic's handle, its case link's and its row's MACs checked, and the
    /// erasure ledger consulted. `forUpdate` locks the subject row until the transaction ends.
    func subject(_ connection: PostgresConnection, handleIndex: [UInt8], clinic: ClinicID, forUpdate: Bool = false) async throws
        -> PostgresSubjectRow?
    {
        let found: PostgresRow?
        if forUpdate {
            found = try await connection.row(SubjectForUpdateStatement(handleIndex: handleIndex, clinic: clinic.rawValue), logger: logger)
        } else {
            found = try await connection.row(
                """
                SELECT \(unescaped: PostgresSubjectRow.selectColumns), \(unescaped: PostgresCaseLinkRow.selectColumns)
                FROM case_link c JOIN subject s ON s.id = c.subject_id
                WHERE c.handle_index = \(handleIndex.bytea) AND c.clinic = \(clinic.rawValue)
                """, logger: logger)
        }
        guard let row = found else { return nil }
        return try authenticatedSubject(row.makeRandomAccess())
    }

    /// The subject row and its case link at the start of `cells`, both MACs checked and the
    /// erasure ledger consulted: every lookup by case handle goes through here.
    func authenticatedSubject(_ cells: PostgresRandomAccessRow) throws -> PostgresSubjectRow {
        let subject = try PostgresSubjectRow(cells)
        let link = try PostgresCaseLinkRow(cells, offset: PostgresSubjectRow.columnCount)
        let keyring = self.keyring
        try link.authenticate(sid: subject.sid, keyring: keyring)
        try subject.authenticate(keyring: keyring, erased: erased)
        return subject
    }

    /// A row of `SubjectWithExtentStatement`: the case link's MAC, the subject row's MAC and the
    /// erasure ledger checked; the record count is checked against the row by whoever opens
    /// the summary (`summaryView`) or the records (`view`).
    func subjectWithExtent(_ row: PostgresRow) throws -> SubjectWithExtent {
        let cells = row.makeRandomAccess()
        let subject = try authenticatedSubject(cells)
        let o = PostgresSubjectRow.columnCount + PostgresCaseLinkRow.columnCount
        let records = try cells[o].decode(Int64.self)
        let newestRecord = try cells[o + 1].decode(Int64?.self)
        let links = try cells[o + 2].decode(Int64.self)
        let newestLink = try cells[o + 3].decode(Int64?.self)
        // A count beyond Int is no count of rows anonreg wrote (checkExtent refuses it).
        guard let count = Int(exactly: records) else { throw StorageError.integrity(what: "record set (a count no anonreg writes)") }
        return SubjectWithExtent(
            subject: subject, records: (count, newestRecord ?? -1),
            stamp: subject.stamp(newestRecord: newestRecord, records: records, newestLink: newestLink, links: links))
    }

    /// The subject holding a code, its row's MAC (which binds the code index) checked.
    func subject(_ connection: PostgresConnection, codeIndex: [UInt8], forUpdate: Bool = false) async throws -> PostgresSubjectRow? {
        let lock = forUpdate ? " FOR UPDATE" : ""
        guard
            let row = try await connection.row(
                """
                SELECT \(unescaped: PostgresSubjectRow.selectColumns) FROM subject s WHERE s.code_index = \(codeIndex.bytea)\(unescaped: lock)
                """, logger: logger)
        else { return nil }
        let subject = try PostgresSubjectRow(row.makeRandomAccess())
        try subject.authenticate(keyring: keyring, erased: erased)
        return subject
    }

    // MARK: - Helpers

    /// A new case link: the handle sealed under the subject's DEK, its keyed index, and the
    /// row's MAC (docs/CRYPTO.md §Authenticated columns).
    static func insertCase(
        _ connection: PostgresConnection, subject: PostgresSubjectRow, clinic: ClinicID, handle: CaseHandle, handleIndex: [UInt8],
        dek: borrowing SecretBytes, keyring: Keyring, logger: Logger
    ) async throws {
        let linkID = try await nextIDs(connection, table: "case_link", count: 1, logger: logger)[0]
        let sealed = try CaseHandleSeal.seal(handle, sid: subject.sid, linkID: linkID, dek: dek)
        let mac = try RowIntegrity.linkMAC(
            linkID: linkID, handleIndex: handleIndex, clinic: clinic.rawValue, sid: subject.sid, keyring: keyring)
        try await connection.send(
            """
            INSERT INTO case_link (id, handle_index, clinic, subject_id, sealed_handle, row_mac) OVERRIDING SYSTEM VALUE
            VALUES (\(linkID), \(handleIndex.bytea), \(clinic.rawValue), \(subject.id), \(sealed.bytea), \(mac.bytea))
            """, logger: logger)
    }

    /// `count` ids of `table`'s identity sequence, ascending, drawn before the rows are inserted
    /// so that each can be bound into associated data and MACs. A sequence never hands an id out
    /// twice, also across nodes and after a rollback (the stamp relies on it).
    static func nextIDs(_ connection: PostgresConnection, table: String, count: Int, logger: Logger) async throws -> [Int64] {
        var ids: [Int64] = []
        for row in try await connection.rows(
            "SELECT nextval(pg_get_serial_sequence(\(table), 'id')) FROM generate_series(1, \(count))", logger: logger)
        {
            ids.append(try row.decode(Int64.self))
        }
        guard ids.count == count else { throw StorageError.database(reason: "the \(table) sequence returned \(ids.count) ids") }
        return ids.sorted()
    }
}

/// A subject row with its records' extent and its stamp, read in one statement.
struct SubjectWithExtent: Sendable {
    var subject: PostgresSubjectRow
    var records: (count: Int, newest: Int64)
    var stamp: SubjectStamp
}

/// Carries a DEK into a transaction's closure; the key stays in secure memory and is wiped when
/// the box is released.
final class DEKBox: @unchecked Sendable {
    let key: SecretBytes
    init(_ key: consuming SecretBytes) { self.key = key }
}
