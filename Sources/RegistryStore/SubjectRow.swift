import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

/// A subject's row, with helpers to open what it seals and to keep its MAC current (docs/CRYPTO.md
/// §Authenticated columns). Internal to the store.
///
/// A row read from the database is untrusted until `authenticate` passed: its MAC binds the code
/// index, the clear columns, the record count and the record chain head to the subject's sid. A
/// write changes the row in memory (`append`, `columns`, `codeIndex`) and `save` writes the new
/// values with their new MAC in one statement.
struct SubjectRow: SealedSubjectRow {
    var id: Int64
    var sid: [UInt8]
    var codeIndex: [UInt8]
    var wrappedDEK: [UInt8]
    var kekVersion: Int
    var columns: SubjectColumns
    /// How many records the subject has, and the head of their chain (RowIntegrity).
    var records: Int
    var recordsHead: [UInt8]
    var rowMAC: [UInt8]
    /// The sealed monitoring summary, or nil (docs/CRYPTO.md §Monitoring summary). Not under
    /// the row MAC: its associated data binds it to `records` and `recordsHead`, which are.
    var summary: [UInt8]?

    static let selectColumns =
        "s.id, s.sid, s.wrapped_dek, s.kek_version, s.status, s.next_due, s.review_on, s.code_index, s.records, s.records_head, s.row_mac, s.summary"
    static let columnCount = 12
    /// The same columns for a migration that runs before `v5-sealed-summary` added the summary.
    static let selectColumnsBeforeSummary = selectColumns.replacingOccurrences(of: "s.summary", with: "NULL")
    /// The same columns without the summary, for a list that opens none (the due list): the
    /// summary is the row's largest cell, and not under its MAC.
    static let selectColumnsWithoutSummary = selectColumnsBeforeSummary

    /// Reads `selectColumns` starting at column `offset`. A value no anonreg writes (an unknown
    /// status, a date that does not parse, a cell of the wrong type) is an integrity failure, like
    /// a wrong MAC, never a crash: the columns' CHECK constraints do not stop SQLite from storing
    /// text where an integer belongs.
    init(row: Row, offset o: Int = 0) throws {
        let cells = RowCells(row: row, what: "subject row")
        id = try cells.integer(o)
        sid = try cells.blob(o + 1)
        wrappedDEK = try cells.blob(o + 2)
        kekVersion = Int(try cells.integer(o + 3))
        guard let status = SubjectStatus(rawValue: try cells.text(o + 4) ?? "") else {
            throw StorageError.integrity(what: "subject row (status)")
        }
        let nextDue = try cells.text(o + 5)
        let reviewOn = try cells.text(o + 6)
        let next = nextDue.flatMap { Day($0) }
        let review = reviewOn.flatMap { Day($0) }
        guard (nextDue == nil) == (next == nil), (reviewOn == nil) == (review == nil) else {
            throw StorageError.integrity(what: "subject row (dates)")
        }
        columns = SubjectColumns(status: status, nextDue: next, reviewOn: review)
        codeIndex = try cells.blob(o + 7)
        // A negative count passes no MAC, and must not trap where it is encoded for one
        // (`PRAGMA ignore_check_constraints` lets a writer store it).
        guard let count = Int(exactly: try cells.integer(o + 8)), count >= 0 else {
            throw StorageError.integrity(what: "subject row (record count)")
        }
        records = count
        recordsHead = try cells.blob(o + 9)
        rowMAC = try cells.blob(o + 10)
        summary = try cells.optionalBlob(o + 11)
    }

    /// A new subject's row before its first insert: no records yet.
    init(id: Int64, sid: [UInt8], codeIndex: [UInt8], wrappedDEK: [UInt8], kekVersion: Int, columns: SubjectColumns) {
        self.id = id
        self.sid = sid
        self.codeIndex = codeIndex
        self.wrappedDEK = wrappedDEK
        self.kekVersion = kekVersion
        self.columns = columns
        self.records = 0
        self.recordsHead = RowIntegrity.genesis
        self.rowMAC = []
        self.summary = nil
    }

    /// Writes the row's code index, columns, record count and chain head with their MAC, and
    /// its sealed summary.
    mutating func save(_ db: Database, keyring: Keyring) throws {
        rowMAC = try expectedMAC(keyring: keyring)
        try db.executeCached(
            """
            UPDATE subject SET code_index = ?, status = ?, next_due = ?, review_on = ?, records = ?, records_head = ?, row_mac = ?,
                summary = ? WHERE id = ?
            """,
            [
                Data(codeIndex), columns.status.rawValue, columns.nextDue?.description, columns.reviewOn?.description, records,
                Data(recordsHead), Data(rowMAC), summary.map { Data($0) }, id,
            ])
    }

    /// Seals `plaintext` as the summary of the history the row names now (its record count,
    /// chain head and newest record), or clears it (docs/CRYPTO.md §Monitoring summary). Call
    /// after `append`.
    mutating func sealSummary(_ db: Database, _ plaintext: [UInt8]?, dek: borrowing SecretBytes) throws {
        guard plaintext != nil else {
            summary = nil
            return
        }
        summary = try sealedSummary(plaintext, newestRecord: try recordExtent(db).newest, dek: dek)
    }

    /// How many record rows the subject has and the newest one's id (-1 for none), from the
    /// index on (subject_id, id): no record is read or decrypted. The count walks the subject's
    /// index entries, microseconds for hundreds of records.
    func recordExtent(_ db: Database) throws -> (count: Int, newest: Int64) {
        let row = try db.fetchOneCached(
            "SELECT (SELECT count(*) FROM record WHERE subject_id = ?1), (SELECT max(id) FROM record WHERE subject_id = ?1)", [id])
        let count: Int64 = row?[0] ?? 0
        let newest: Int64? = row?[1]
        return (Int(count), newest ?? -1)
    }

    /// The subject with only its summary opened: no record is decrypted, and no case link read
    /// (docs/STORAGE.md §Summary). The record rows must still be the ones the row names, in
    /// number and newest id; the chain itself is walked by every read of the history and by
    /// the full check. The row must have been authenticated.
    func summaryView(_ db: Database, keyring: Keyring, slab: SecureSlab, recorder: AuditRecorder? = nil) throws -> SubjectView {
        let extent = try recordExtent(db)
        try checkExtent(count: extent.count)
        let dek = try dek(keyring: keyring, slab: slab)
        let summary = try openSummary(newestRecord: extent.newest, dek: dek)
        let reference = try recordReference(keyring: keyring, in: recorder)
        return SubjectView(records: [], columns: columns, clinics: [], auditReference: reference, summary: summary)
    }

    static func byCodeIndex(_ db: Database, _ codeIndex: [UInt8]) throws -> SubjectRow? {
        try db.fetchOneCached("SELECT \(selectColumns) FROM subject s WHERE s.code_index = ?", [Data(codeIndex)]).map {
            try SubjectRow(row: $0)
        }
    }

    static func byID(_ db: Database, _ id: Int64) throws -> SubjectRow? {
        try db.fetchOneCached("SELECT \(selectColumns) FROM subject s WHERE s.id = ?", [id]).map { try SubjectRow(row: $0) }
    }

    /// Opens every record and lists the clinics: the whole view of the subject.
    func view(_ db: Database, keyring: Keyring, slab: SecureSlab, recorder: AuditRecorder? = nil) throws -> SubjectView {
        try view(db, keyring: keyring, dek: try dek(keyring: keyring, slab: slab), recorder: recorder)
    }

    /// The same, with the subject's DEK already open (a write that appends after reading). The
    /// records read must be exactly the ones the row's MAC names (count and chain head): a row
    /// deleted, inserted or put back is an integrity failure, never a shorter or longer history.
    func view(_ db: Database, keyring: Keyring, dek: borrowing SecretBytes, recorder: AuditRecorder? = nil) throws -> SubjectView {
        let rows = try db.fetchAllCached("SELECT id, kind, schema_version, sealed FROM record WHERE subject_id = ? ORDER BY id", [id]).map {
            (row) throws(StorageError) in
            let cells = RowCells(row: row, what: "record row")
            return SealedRecordRow(
                id: try cells.integer(0), kind: try cells.text(1) ?? "", schemaVersion: try cells.integer(2), sealed: try cells.blob(3))
        }
        let records = try openRecords(rows, dek: dek, keyring: keyring)
        // The clinics that hold a case, each link's MAC checked: a row inserted behind anonreg's
        // back never shows a patient a clinic that does not hold their case.
        var clinics: [ClinicID] = []
        for row in try db.fetchAllCached("SELECT \(CaseLinkRow.selectColumns) FROM case_link c WHERE c.subject_id = ? ORDER BY c.id", [id])
        {
            let link = try CaseLinkRow(row: row)
            try link.authenticate(sid: sid, keyring: keyring)
            if let clinic = ClinicID(link.clinic) { clinics.append(clinic) }
        }
        let summary = try openSummary(newestRecord: records.last?.id ?? -1, dek: dek)
        let reference = try recordReference(keyring: keyring, in: recorder)
        return SubjectView(records: records, columns: columns, clinics: clinics, auditReference: reference, summary: summary)
    }

    /// Seals and inserts `records` for this subject, extending the record chain in memory;
    /// returns them with their ids. The caller `save`s the row afterwards.
    mutating func append(_ db: Database, _ records: [NewRecord], dek: borrowing SecretBytes, keyring: Keyring) throws -> [StoredRecord] {
        var stored: [StoredRecord] = []
        for record in records {
            let recordID = try SQLiteRegistryStore.nextID(db, table: "record")
            let ad = SubjectKeys.recordAD(sid: sid, id: recordID, kind: record.kind.rawValue, schemaVersion: record.schemaVersion)
            let sealed = try SubjectKeys.seal(record.plaintext, dek: dek, ad: ad)
            try db.executeCached(
                "INSERT INTO record (id, subject_id, kind, schema_version, sealed) VALUES (?, ?, ?, ?, ?)",
                [recordID, id, record.kind.rawValue, Int(record.schemaVersion), Data(sealed)])
            recordsHead = try RowIntegrity.chain(
                recordsHead, recordID: recordID, kind: record.kind.rawValue,
                schemaVersion: record.schemaVersion, keyring: keyring)
            self.records += 1
            stored.append(StoredRecord(id: recordID, kind: record.kind, schemaVersion: record.schemaVersion, plaintext: record.plaintext))
        }
        return stored
    }

    /// What a commit compares between the open and its write (docs/STORAGE.md §Changes): the
    /// same subject, with no record and no case link added or removed (both are AUTOINCREMENT:
    /// ids are never reused, so the newest id and the count together catch any change), the
    /// same columns and the same row MAC (which every save renews).
    ///
    ///     BE64(subject id) ‖ BE64(newest record id, -1 for none) ‖ BE64(records)
    ///     ‖ BE64(newest case link id, -1) ‖ BE64(case links) ‖ lp(status) ‖ lp(next due)
    ///     ‖ lp(review date) ‖ row MAC                             lp(x) = BE32(len x) ‖ x
    func stamp(_ db: Database) throws -> SubjectStamp {
        let row = try db.fetchOneCached(
            """
            SELECT (SELECT max(id) FROM record WHERE subject_id = ?1), (SELECT count(*) FROM record WHERE subject_id = ?1),
                   (SELECT max(id) FROM case_link WHERE subject_id = ?1), (SELECT count(*) FROM case_link WHERE subject_id = ?1)
            """, [id])
        let newestRecord: Int64? = row?[0]
        let records: Int64 = row?[1] ?? 0
        let newestLink: Int64? = row?[2]
        let links: Int64 = row?[3] ?? 0
        return stamp(newestRecord: newestRecord, records: records, newestLink: newestLink, links: links)
    }
}

/// A case link row: a clinic's keyed handle index pointing at a subject. Its MAC binds the
/// handle index and the clinic to the row id and to the sid of the subject it points at, so a
/// rewritten `subject_id` (a handle redirected to another person) fails (docs/CRYPTO.md
/// §Authenticated columns).
struct CaseLinkRow: SealedCaseLinkRow {
    var id: Int64
    var handleIndex: [UInt8]
    var clinic: String
    var rowMAC: [UInt8]

    static let selectColumns = "c.id, c.handle_index, c.clinic, c.row_mac"
    static let columnCount = 4

    init(row: Row, offset o: Int = 0) throws {
        let cells = RowCells(row: row, what: "case link row")
        id = try cells.integer(o)
        handleIndex = try cells.blob(o + 1)
        clinic = try cells.text(o + 2) ?? ""
        rowMAC = try cells.blob(o + 3)
    }

    /// The subject behind a clinic's handle, both rows read (not yet authenticated).
    static func byCase(_ db: Database, handleIndex: [UInt8], clinic: ClinicID) throws -> (SubjectRow, CaseLinkRow)? {
        try db.fetchOneCached(
            """
            SELECT \(SubjectRow.selectColumns), \(selectColumns) FROM case_link c JOIN subject s ON s.id = c.subject_id
            WHERE c.handle_index = ? AND c.clinic = ?
            """, [Data(handleIndex), clinic.rawValue]
        ).map { (try SubjectRow(row: $0), try CaseLinkRow(row: $0, offset: SubjectRow.columnCount)) }
    }
}

/// Typed reads of a row's cells that throw `.integrity` on a cell of the wrong type.
struct RowCells {
    let row: Row
    let what: String

    func integer(_ i: Int) throws(StorageError) -> Int64 {
        guard case .int64(let value) = (row[i] as DatabaseValue).storage else {
            throw .integrity(what: "\(what) (a cell of the wrong type)")
        }
        return value
    }

    func blob(_ i: Int) throws(StorageError) -> [UInt8] {
        guard case .blob(let data) = (row[i] as DatabaseValue).storage else { throw .integrity(what: "\(what) (a cell of the wrong type)") }
        return Self.bytes(data)
    }

    func optionalBlob(_ i: Int) throws(StorageError) -> [UInt8]? {
        switch (row[i] as DatabaseValue).storage {
        case .null: return nil
        case .blob(let data): return Self.bytes(data)
        default: throw .integrity(what: "\(what) (a cell of the wrong type)")
        }
    }

    /// One copy through the buffer: `Array(data)` walks Data's iterator (docs/PERFORMANCE.md,
    /// due list).
    static func bytes(_ data: Data) -> [UInt8] {
        data.withUnsafeBytes { [UInt8]($0) }
    }

    func text(_ i: Int) throws(StorageError) -> String? {
        switch (row[i] as DatabaseValue).storage {
        case .null: return nil
        case .string(let text): return text
        default: throw .integrity(what: "\(what) (a cell of the wrong type)")
        }
    }
}
