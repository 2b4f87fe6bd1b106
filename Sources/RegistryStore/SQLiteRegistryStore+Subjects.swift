import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

extension SQLiteRegistryStore {
    public func enrol(_ enrolment: Enrolment) async throws(StorageError) -> EnrolmentReceipt {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        // Everything that needs no row id is computed before entering the writer.
        let code: PatientCode
        do { code = try PatientCode.generate() } catch { throw .database(reason: "random bytes unavailable") }
        let codeText = code.formatted()
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        let sid = try SubjectKeys.newSID()
        let dek = try SubjectKeys.newDEK(slab: dekSlab)
        let dekBox = DEKBox(dek)
        let handle = try SubjectKeys.newCaseHandle()
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        // The open month's unique-person tag (docs/CRYPTO.md §Unique persons), computed and
        // written the same way whether or not it was seen before, and only with statistics
        // consent. Nothing else derived from the linkage value is kept: no per-subject value.
        let uniqueTag: (mark: UniquePersonMark, tag: [UInt8])? = try enrolment.uniquePerson.flatMap { (mark) throws(StorageError) in
            try enrolment.linkage.map { (value) throws(StorageError) in
                (
                    mark,
                    try SubjectKeys.uniquePersonTag(
                        linkageHash: try SubjectKeys.linkageHash(value, keyring: keyring),
                        month: mark.month, keyring: keyring)
                )
            }
        }

        let view = try await write { db in
            // The primary KEK is read inside the writer: a rotation, retire and destroy that run
            // meanwhile can never leave this subject wrapped under a destroyed version.
            let keyring = self.keyring
            let primary = keyring.primaryKEK
            let wrapped = try SubjectKeys.wrap(dekBox.key, sid: sid, version: primary.version, kek: primary.key)
            var subject = SubjectRow(
                id: try Self.nextID(db, table: "subject"), sid: sid, codeIndex: codeIndex, wrappedDEK: wrapped,
                kekVersion: primary.version, columns: enrolment.columns)
            subject.rowMAC = try subject.expectedMAC(keyring: keyring)
            try db.executeCached(
                """
                INSERT INTO subject (id, sid, code_index, wrapped_dek, kek_version, status, next_due, review_on, records, records_head, row_mac)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    subject.id, Data(sid), Data(codeIndex), Data(wrapped), primary.version, enrolment.columns.status.rawValue,
                    enrolment.columns.nextDue?.description, enrolment.columns.reviewOn?.description, subject.records,
                    Data(subject.recordsHead), Data(subject.rowMAC),
                ])
            try Self.insertCase(
                db, subject: subject, clinic: enrolment.clinic, handle: handle, handleIndex: handleIndex, dek: dekBox.key,
                keyring: keyring)
            _ = try subject.append(db, enrolment.records, dek: dekBox.key, keyring: keyring)
            try subject.sealSummary(db, enrolment.summary, dek: dekBox.key)
            try subject.save(db, keyring: keyring)
            try Self.apply(db, enrolment.counters)
            if let uniqueTag { try Self.markUniquePerson(db, uniqueTag.mark, tag: uniqueTag.tag) }
            let view = try subject.view(db, keyring: keyring, dek: dekBox.key, recorder: recorder)
            try Self.auditEffect(db, recorder: recorder, checkpointEvery: every, keyring: keyring)
            return view
        }
        return EnrolmentReceipt(caseHandle: handle, code: codeText, view: view)
    }

    public func subject(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        return try await read { db in
            guard let subject = try self.subject(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            return try subject.view(db, keyring: self.keyring, slab: self.dekSlab, recorder: recorder)
        }
    }

    /// docs/STORAGE.md §Changes: the subject is opened on a reader, in parallel with other
    /// requests; the domain decides in plain code; `commit` makes the single writer check only
    /// that the subject is unchanged (its stamp) and append. Opening a case decrypts every
    /// record, and deciding decodes them all: doing that inside the writer made every check-up
    /// wait for all earlier ones' decoding (docs/PERFORMANCE.md, finding 6).
    ///
    /// The open names the subject in the request's audit recorder with the store's own key of
    /// it, so a refusal's entry names it; if an erasure commits before that entry is appended,
    /// the append finds the subject gone and keeps no link (`AuditEvent.subjectKey`).
    public func openForChange(case handle: CaseHandle, clinic: ClinicID, history: Bool) async throws(StorageError) -> OpenedSubject {
        let recorder = AuditRecorder.current
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        let open: @Sendable (Database) throws -> OpenedSubject = { db in
            guard let subject = try self.subject(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            // The keyring as it is now, after the row was read (SubjectRow.dek).
            let view =
                history
                ? try subject.view(db, keyring: self.keyring, slab: self.dekSlab, recorder: recorder)
                : try subject.summaryView(db, keyring: self.keyring, slab: self.dekSlab, recorder: recorder)
            return OpenedSubject(view: view, stamp: try subject.stamp(db))
        }
        // The summary alone is a point read; a whole history, which may take milliseconds to
        // open, goes to the reader queue.
        return history ? try await read(open) : try await readPoint(open)
    }

    /// docs/STORAGE.md §Summary: one row read, its MACs checked, one key unwrapped, one summary
    /// opened, whatever the length of the history.
    public func summary(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView {
        let recorder = AuditRecorder.current
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        return try await readPoint { db in
            guard let subject = try self.subject(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            return try subject.summaryView(db, keyring: self.keyring, slab: self.dekSlab, recorder: recorder)
        }
    }

    public func commit(_ change: SubjectChange, case handle: CaseHandle, clinic: ClinicID, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError)
    {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        try await write { db in
            guard var subject = try self.subject(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            guard try subject.stamp(db) == stamp else { throw StorageError.subjectChanged }
            // The keyring in force now: a rotation since the open wraps nothing differently for
            // this subject, whose DEK stays under its recorded version.
            let keyring = self.keyring
            let dek = try subject.dek(keyring: keyring, slab: self.dekSlab)
            try subject.recordReference(keyring: keyring, in: recorder)
            _ = try subject.append(db, change.append, dek: dek, keyring: keyring)
            subject.columns = change.columns
            try subject.sealSummary(db, change.summary, dek: dek)
            try subject.save(db, keyring: keyring)
            try Self.apply(db, change.counters)
            try Self.auditEffect(db, recorder: recorder, checkpointEvery: every, keyring: keyring)
        }
    }

    public func link(code: String, clinic: ClinicID, record: NewRecord, counters: [CounterIncrement]) async throws(StorageError)
        -> CaseHandle
    {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        let fresh = try SubjectKeys.newCaseHandle()
        let freshIndex = try SubjectKeys.handleIndex(fresh, keyring: keyring)
        return try await write { db in
            guard var subject = try self.subject(db, codeIndex: codeIndex) else { throw StorageError.codeNotFound }
            let keyring = self.keyring
            try subject.recordReference(keyring: keyring, in: recorder)
            let dek = try subject.dek(keyring: keyring, slab: self.dekSlab)
            if let existing = try Row.fetchOne(
                db, sql: "SELECT \(CaseLinkRow.selectColumns), c.sealed_handle FROM case_link c WHERE c.subject_id = ? AND c.clinic = ?",
                arguments: [subject.id, clinic.rawValue])
            {
                // The clinic already holds a case: hand the same handle back.
                let link = try CaseLinkRow(row: existing)
                try link.authenticate(sid: subject.sid, keyring: keyring)
                return try CaseHandleSeal.open(
                    Array(existing[CaseLinkRow.columnCount] as Data), sid: subject.sid, linkID: link.id, handleIndex: link.handleIndex,
                    dek: dek, keyring: keyring)
            }
            // A link record changes nothing the summary holds, but the summary is bound to the
            // history's length and head: it is opened under the old and sealed under the new.
            let extent = try subject.recordExtent(db)
            guard extent.count == subject.records else {
                throw StorageError.integrity(what: "record set (a record was deleted, inserted or put back)")
            }
            let summary = try subject.openSummary(newestRecord: extent.newest, dek: dek)
            try Self.insertCase(db, subject: subject, clinic: clinic, handle: fresh, handleIndex: freshIndex, dek: dek, keyring: keyring)
            _ = try subject.append(db, [record], dek: dek, keyring: keyring)
            try subject.sealSummary(db, summary, dek: dek)
            try subject.save(db, keyring: keyring)
            try Self.apply(db, counters)
            try Self.auditEffect(db, recorder: recorder, checkpointEvery: every, keyring: keyring)
            return fresh
        }
    }

    public func subject(code: String) async throws(StorageError) -> SubjectView {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        return try await read { db in
            guard let subject = try self.subject(db, codeIndex: codeIndex) else { throw StorageError.codeNotFound }
            return try subject.view(db, keyring: self.keyring, slab: self.dekSlab, recorder: recorder)
        }
    }

    public func reissueCode(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> String {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        let code: PatientCode
        do { code = try PatientCode.generate() } catch { throw .database(reason: "random bytes unavailable") }
        let codeText = code.formatted()
        let codeIndex = try SubjectKeys.codeIndex(code, keyring: keyring)
        try await write { db in
            guard var subject = try self.subject(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            try subject.recordReference(keyring: keyring, in: recorder)
            subject.codeIndex = codeIndex
            try subject.save(db, keyring: self.keyring)
            try Self.auditEffect(db, recorder: recorder, checkpointEvery: every, keyring: keyring)
        }
        return codeText
    }

    // MARK: - Helpers

    /// A new case link: the handle sealed under the subject's DEK (`CaseLinkRow+Handle.swift`), its
    /// keyed index, and the row's MAC (docs/CRYPTO.md §Authenticated columns).
    static func insertCase(
        _ db: Database, subject: SubjectRow, clinic: ClinicID, handle: CaseHandle, handleIndex: [UInt8],
        dek: borrowing SecretBytes, keyring: Keyring
    ) throws {
        let linkID = try nextID(db, table: "case_link")
        let sealed = try CaseHandleSeal.seal(handle, sid: subject.sid, linkID: linkID, dek: dek)
        let mac = try RowIntegrity.linkMAC(
            linkID: linkID, handleIndex: handleIndex, clinic: clinic.rawValue, sid: subject.sid, keyring: keyring)
        try db.executeCached(
            "INSERT INTO case_link (id, handle_index, clinic, subject_id, sealed_handle, row_mac) VALUES (?, ?, ?, ?, ?, ?)",
            [linkID, Data(handleIndex), clinic.rawValue, subject.id, Data(sealed), Data(mac)])
    }

    /// The id the next AUTOINCREMENT row of `table` gets, known before insert so that it can be
    /// bound into the associated data. Ids are never reused, even after erasure.
    static func nextID(_ db: Database, table: String) throws -> Int64 {
        let last = try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM sqlite_sequence WHERE name = ?"), arguments: [table]) ?? 0
        return last + 1
    }
}

/// Carries a DEK into the writer closure; the key stays in secure memory and is wiped when the
/// box is released after the write.
final class DEKBox: @unchecked Sendable {
    let key: SecretBytes
    init(_ key: consuming SecretBytes) { self.key = key }
}
