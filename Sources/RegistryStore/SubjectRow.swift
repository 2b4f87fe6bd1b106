import Foundation
import GRDB
import RegistryCore
import RegistryProtocol
import RegistryCrypto
import RegistryKeyring

/// A subject's row, with helpers to open what it seals. Internal to the store.
struct SubjectRow {
    var id: Int64
    var sid: [UInt8]
    var wrappedDEK: [UInt8]
    var kekVersion: Int
    var columns: SubjectColumns

    static let selectColumns = "s.id, s.sid, s.wrapped_dek, s.kek_version, s.status, s.next_due, s.review_on"

    /// Reads `selectColumns` starting at column `offset`.
    init(row: Row, offset o: Int = 0) throws {
        id = row[o]
        sid = Array(row[o + 1] as Data)
        wrappedDEK = Array(row[o + 2] as Data)
        kekVersion = row[o + 3]
        guard let status = SubjectStatus(rawValue: row[o + 4]) else { throw StorageError.database(reason: "unknown status") }
        let nextDue: String? = row[o + 5]
        let reviewOn: String? = row[o + 6]
        columns = SubjectColumns(status: status, nextDue: nextDue.flatMap { Day($0) }, reviewOn: reviewOn.flatMap { Day($0) })
    }

    static func byCase(_ db: Database, handleIndex: [UInt8], clinic: ClinicID) throws -> SubjectRow? {
        try db.fetchOneCached("""
            SELECT \(selectColumns) FROM case_link c JOIN subject s ON s.id = c.subject_id
            WHERE c.handle_index = ? AND c.clinic = ?
            """, [Data(handleIndex), clinic.rawValue]).map { try SubjectRow(row: $0) }
    }

    static func byCodeIndex(_ db: Database, _ codeIndex: [UInt8]) throws -> SubjectRow? {
        try db.fetchOneCached("SELECT \(selectColumns) FROM subject s WHERE s.code_index = ?", [Data(codeIndex)]).map { try SubjectRow(row: $0) }
    }

    /// Callers pass the store's keyring as it is *now*, read after this row was fetched, never
    /// a snapshot taken before the transaction: a row names a KEK version only after the
    /// keyring holding it was installed, so a snapshot taken earlier may lack the version a
    /// concurrent rotation made primary (the fault run's `500 internal_error`,
    /// docs/ROBUSTNESS.md; KeyRotationRaceTests).
    func dek(keyring: Keyring, slab: SecureSlab) throws(StorageError) -> SecretBytes {
        try SubjectKeys.unwrap(wrappedDEK, sid: sid, version: kekVersion, keyring: keyring, slab: slab)
    }

    /// Opens every record and lists the clinics: the whole view of the subject.
    func view(_ db: Database, keyring: Keyring, slab: SecureSlab, recorder: AuditRecorder? = nil) throws -> SubjectView {
        try view(db, keyring: keyring, dek: try dek(keyring: keyring, slab: slab), recorder: recorder)
    }

    /// The same, with the subject's DEK already open (a write that appends after reading).
    func view(_ db: Database, keyring: Keyring, dek: borrowing SecretBytes, recorder: AuditRecorder? = nil) throws -> SubjectView {
        var records: [StoredRecord] = []
        for row in try db.fetchAllCached("SELECT id, kind, schema_version, sealed FROM record WHERE subject_id = ? ORDER BY id", [id]) {
            let recordID: Int64 = row[0]
            let kindText: String = row[1]
            let schema: Int = row[2]
            guard let kind = RecordKind(rawValue: kindText), let schemaVersion = UInt16(exactly: schema) else {
                throw StorageError.tampered(what: "record")
            }
            let ad = SubjectKeys.recordAD(sid: sid, id: recordID, kind: kind.rawValue, schemaVersion: schemaVersion)
            let plaintext = try SubjectKeys.open(Array(row[3] as Data), dek: dek, ad: ad, what: "\(kind.rawValue) record")
            records.append(StoredRecord(id: recordID, kind: kind, schemaVersion: schemaVersion, plaintext: plaintext))
        }
        let clinics = try String.fetchAll(db.cachedStatement(sql: "SELECT clinic FROM case_link WHERE subject_id = ? ORDER BY id"), arguments: [id])
            .compactMap(ClinicID.init)
        let reference = try SubjectKeys.auditReference(sid: sid, keyring: keyring)
        recorder?.record(reference, subjectKey: sid)
        return SubjectView(records: records, columns: columns, clinics: clinics, auditReference: reference)
    }

    /// Seals and inserts `records` for this subject; returns them with their ids.
    func append(_ db: Database, _ records: [NewRecord], dek: borrowing SecretBytes) throws -> [StoredRecord] {
        var stored: [StoredRecord] = []
        for record in records {
            let recordID = try SQLiteRegistryStore.nextID(db, table: "record")
            let ad = SubjectKeys.recordAD(sid: sid, id: recordID, kind: record.kind.rawValue, schemaVersion: record.schemaVersion)
            let sealed = try SubjectKeys.seal(record.plaintext, dek: dek, ad: ad)
            try db.executeCached(
                "INSERT INTO record (id, subject_id, kind, schema_version, sealed) VALUES (?, ?, ?, ?, ?)",
                [recordID, id, record.kind.rawValue, Int(record.schemaVersion), Data(sealed)])
            stored.append(StoredRecord(id: recordID, kind: record.kind, schemaVersion: record.schemaVersion, plaintext: record.plaintext))
        }
        return stored
    }

    /// What `update` compares between its optimistic read and its write: the same subject,
    /// with no record and no case link added or removed (both are AUTOINCREMENT: ids are never
    /// reused, so the newest id and the count together catch any change), and the same columns.
    struct Stamp: Equatable {
        var subject: Int64
        var lastRecord: Int64?
        var records: Int
        var lastLink: Int64?
        var links: Int
        var columns: SubjectColumns
    }

    func stamp(_ db: Database) throws -> Stamp {
        let row = try db.fetchOneCached("""
            SELECT (SELECT max(id) FROM record WHERE subject_id = ?1), (SELECT count(*) FROM record WHERE subject_id = ?1),
                   (SELECT max(id) FROM case_link WHERE subject_id = ?1), (SELECT count(*) FROM case_link WHERE subject_id = ?1)
            """, [id])
        return Stamp(subject: id, lastRecord: row?[0], records: row?[1] ?? 0, lastLink: row?[2], links: row?[3] ?? 0, columns: columns)
    }

    /// Tells the request's audit recorder which subject it touched (before an erasure, say).
    func recordReference(keyring: Keyring, in recorder: AuditRecorder?) throws {
        guard let recorder else { return }
        recorder.record(try SubjectKeys.auditReference(sid: sid, keyring: keyring), subjectKey: sid)
    }

    func setColumns(_ db: Database, _ columns: SubjectColumns) throws {
        try db.executeCached(
            "UPDATE subject SET status = ?, next_due = ?, review_on = ? WHERE id = ?",
            [columns.status.rawValue, columns.nextDue?.description, columns.reviewOn?.description, id])
    }
}
