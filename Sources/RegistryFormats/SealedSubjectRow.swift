import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol

/// A subject row as every backend stores it (docs/STORAGE.md §Backend-neutral formats), and
/// everything done with it that involves no database: its MAC, its data key, its summary, the
/// record chain its records must match, and the stamp a commit compares. The SQLite and the
/// PostgreSQL backends each read the row their own way and conform; nothing here can differ
/// between them.
///
/// A row read from a database is untrusted until `authenticate` passed: its MAC binds the code
/// index, the clear columns, the record count and the record chain head to the subject's sid
/// (docs/CRYPTO.md §Authenticated columns).
package protocol SealedSubjectRow {
    var id: Int64 { get }
    var sid: [UInt8] { get }
    var codeIndex: [UInt8] { get }
    var wrappedDEK: [UInt8] { get }
    var kekVersion: Int { get }
    var columns: SubjectColumns { get }
    /// How many records the subject has, and the head of their chain (RowIntegrity).
    var records: Int { get }
    var recordsHead: [UInt8] { get }
    var rowMAC: [UInt8] { get }
    /// The sealed monitoring summary, or nil (docs/CRYPTO.md §Monitoring summary). Not under
    /// the row MAC: its associated data binds it to `records` and `recordsHead`, which are.
    var summary: [UInt8]? { get }
}

/// One record row as read, before it is opened.
package struct SealedRecordRow: Sendable {
    package var id: Int64
    package var kind: String
    package var schemaVersion: Int64
    package var sealed: [UInt8]

    package init(id: Int64, kind: String, schemaVersion: Int64, sealed: [UInt8]) {
        self.id = id
        self.kind = kind
        self.schemaVersion = schemaVersion
        self.sealed = sealed
    }
}

extension SealedSubjectRow {
    /// The MAC the row's current values should carry.
    package func expectedMAC(keyring: Keyring) throws(StorageError) -> [UInt8] {
        try RowIntegrity.subjectMAC(
            id: id, sid: sid, codeIndex: codeIndex, kekVersion: kekVersion, columns: columns, records: records,
            recordsHead: recordsHead, keyring: keyring)
    }

    /// Throws `.integrity` unless the row's MAC matches its values, and unless the subject is
    /// absent from the erasure ledger (a row restored behind anonreg's back after its erasure).
    package func authenticate(keyring: Keyring, erased: ErasedSubjects?) throws(StorageError) {
        guard RowIntegrity.matches(rowMAC, try expectedMAC(keyring: keyring)) else {
            throw .integrity(what: "subject row")
        }
        if let erased, erased.count > 0 {
            let reference: [UInt8]
            do { reference = try ErasureLedger(keyring: keyring).reference(sid: sid) } catch {
                throw .database(reason: "could not compute an erasure-ledger reference")
            }
            if erased.contains(reference) {
                throw .integrity(
                    what: "subject named in the erasure ledger (an erasure that did not complete, or rows put back after an erasure)")
            }
        }
    }

    /// Callers pass the keyring as it is *now*, read after this row was fetched, never a
    /// snapshot taken before: a row names a KEK version only after the keyring holding it was
    /// installed, so a snapshot taken earlier may lack the version a concurrent rotation made
    /// primary (docs/ROBUSTNESS.md; KeyRotationRaceTests).
    package func dek(keyring: Keyring, slab: SecureSlab) throws(StorageError) -> SecretBytes {
        try SubjectKeys.unwrap(wrappedDEK, sid: sid, version: kekVersion, keyring: keyring, slab: slab)
    }

    /// The summary opened, or nil if the row has none. One that does not open under the
    /// history the row names and the newest record row (modified, put back from before a later
    /// change, moved from another subject, beside a record row deleted or added) is
    /// `.tampered`, like a record.
    package func openSummary(newestRecord: Int64, dek: borrowing SecretBytes) throws(StorageError) -> [UInt8]? {
        guard let summary else { return nil }
        return try SubjectKeys.open(
            summary, dek: dek,
            ad: SubjectKeys.summaryAD(sid: sid, records: records, recordsHead: recordsHead, newestRecord: newestRecord),
            what: "monitoring summary")
    }

    /// `plaintext` sealed as the summary of the history the row names now (its record count and
    /// chain head) whose newest record is `newestRecord`; nil clears it.
    package func sealedSummary(_ plaintext: [UInt8]?, newestRecord: Int64, dek: borrowing SecretBytes) throws(StorageError) -> [UInt8]? {
        guard let plaintext else { return nil }
        return try SubjectKeys.seal(
            plaintext, dek: dek,
            ad: SubjectKeys.summaryAD(sid: sid, records: records, recordsHead: recordsHead, newestRecord: newestRecord))
    }

    /// The subject's keyed audit reference, named in the request's audit recorder.
    @discardableResult
    package func recordReference(keyring: Keyring, in recorder: AuditRecorder?) throws(StorageError) -> [UInt8] {
        let reference = try SubjectKeys.auditReference(sid: sid, keyring: keyring)
        recorder?.record(reference, subjectKey: sid)
        return reference
    }

    /// Opens `rows` (all of the subject's record rows, in id order) and checks that they are
    /// exactly the ones the row's MAC names, in number and chain head: a row deleted, inserted
    /// or put back is an integrity failure, never a shorter or longer history.
    package func openRecords(_ rows: [SealedRecordRow], dek: borrowing SecretBytes, keyring: Keyring) throws(StorageError)
        -> [StoredRecord]
    {
        var records: [StoredRecord] = []
        records.reserveCapacity(rows.count)
        var head = RowIntegrity.genesis
        for row in rows {
            guard let kind = RecordKind(rawValue: row.kind), let schemaVersion = UInt16(exactly: row.schemaVersion) else {
                throw .tampered(what: "record")
            }
            head = try RowIntegrity.chain(head, recordID: row.id, kind: kind.rawValue, schemaVersion: schemaVersion, keyring: keyring)
            let ad = SubjectKeys.recordAD(sid: sid, id: row.id, kind: kind.rawValue, schemaVersion: schemaVersion)
            let plaintext = try SubjectKeys.open(row.sealed, dek: dek, ad: ad, what: "\(kind.rawValue) record")
            records.append(StoredRecord(id: row.id, kind: kind, schemaVersion: schemaVersion, plaintext: plaintext))
        }
        guard records.count == self.records, RowIntegrity.matches(head, recordsHead) else {
            throw .integrity(what: "record set (a record was deleted, inserted or put back)")
        }
        return records
    }

    /// Throws unless the subject's record rows are as many as the row names: the check a read
    /// that opens no record makes (docs/STORAGE.md §Summary).
    package func checkExtent(count: Int) throws(StorageError) {
        guard count == records else { throw .integrity(what: "record set (a record was deleted, inserted or put back)") }
    }

    /// What a commit compares between the open and its write (docs/STORAGE.md §Changes): the
    /// same subject, with no record and no case link added or removed (ids are never reused,
    /// so the newest id and the count together catch any change), the same columns and the
    /// same row MAC (which every save renews).
    ///
    ///     BE64(subject id) ‖ BE64(newest record id, -1 for none) ‖ BE64(records)
    ///     ‖ BE64(newest case link id, -1) ‖ BE64(case links) ‖ lp(status) ‖ lp(next due)
    ///     ‖ lp(review date) ‖ row MAC                             lp(x) = BE32(len x) ‖ x
    package func stamp(newestRecord: Int64?, records: Int64, newestLink: Int64?, links: Int64) -> SubjectStamp {
        func be64(_ value: Int64) -> [UInt8] { SubjectKeys.bigEndian(UInt64(bitPattern: value)) }
        return SubjectStamp(
            bytes: be64(id) + be64(newestRecord ?? -1) + be64(records) + be64(newestLink ?? -1) + be64(links)
                + RowIntegrity.lp(columns.status.rawValue) + RowIntegrity.lp(columns.nextDue?.description ?? "")
                + RowIntegrity.lp(columns.reviewOn?.description ?? "") + rowMAC)
    }
}

/// A case link row as every backend stores it: a clinic's keyed handle index pointing at a
/// subject. Its MAC binds the handle index and the clinic to the row id and to the sid of the
/// subject it points at, so a rewritten `subject_id` (a handle redirected to another person)
/// fails (docs/CRYPTO.md §Authenticated columns).
package protocol SealedCaseLinkRow {
    var id: Int64 { get }
    var handleIndex: [UInt8] { get }
    var clinic: String { get }
    var rowMAC: [UInt8] { get }
}

extension SealedCaseLinkRow {
    package func authenticate(sid: [UInt8], keyring: Keyring) throws(StorageError) {
        let expected = try RowIntegrity.linkMAC(linkID: id, handleIndex: handleIndex, clinic: clinic, sid: sid, keyring: keyring)
        guard RowIntegrity.matches(rowMAC, expected) else { throw .integrity(what: "case link row") }
    }
}
