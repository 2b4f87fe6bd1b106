import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

/// A subject row read from PostgreSQL. What is done with it that involves no database (its MAC,
/// key, summary, record chain and stamp) is `SealedSubjectRow`'s, shared with SQLite; this file
/// holds only how it is read and written here.
struct PostgresSubjectRow: SealedSubjectRow {
    var id: Int64
    var sid: [UInt8]
    var codeIndex: [UInt8]
    var wrappedDEK: [UInt8]
    var kekVersion: Int
    var columns: SubjectColumns
    var records: Int
    var recordsHead: [UInt8]
    var rowMAC: [UInt8]
    var summary: [UInt8]?
    /// The id of the newest record `append` staged in this transaction, if any: with the row
    /// locked, it is the subject's newest record, and `sealSummary` need not ask the table.
    var appendedNewest: Int64?
    /// Records sealed by `append` and not yet inserted: `save` writes them with the row.
    var stagedRecords: [StagedRecord] = []

    static let selectColumns =
        "s.id, s.sid, s.wrapped_dek, s.kek_version, s.status, s.next_due, s.review_on, s.code_index, s.records, s.records_head, s.row_mac, s.summary"
    static let columnCount = 12
    /// The same columns without the summary, for a list that opens none (the due list): the
    /// summary is the row's largest cell, and not under its MAC.
    static let selectColumnsWithoutSummary =
        "s.id, s.sid, s.wrapped_dek, s.kek_version, s.status, s.next_due, s.review_on, s.code_index, s.records, s.records_head, s.row_mac, NULL::bytea"

    /// Reads `selectColumns` starting at column `o`. A value no anonreg writes (an unknown
    /// status, a date that does not parse, a negative count) is an integrity failure, never a
    /// crash: a database administrator can drop the schema's CHECK constraints.
    init(_ row: PostgresRandomAccessRow, offset o: Int = 0) throws {
        id = try row[o].decode(Int64.self)
        sid = try row[o + 1].bytes()
        wrappedDEK = try row[o + 2].bytes()
        kekVersion = Int(try row[o + 3].decode(Int32.self))
        guard let status = SubjectStatus(rawValue: try row[o + 4].decode(String.self)) else {
            throw StorageError.integrity(what: "subject row (status)")
        }
        let nextDue = try row[o + 5].decode(String?.self)
        let reviewOn = try row[o + 6].decode(String?.self)
        let next = nextDue.flatMap { Day($0) }
        let review = reviewOn.flatMap { Day($0) }
        guard (nextDue == nil) == (next == nil), (reviewOn == nil) == (review == nil) else {
            throw StorageError.integrity(what: "subject row (dates)")
        }
        columns = SubjectColumns(status: status, nextDue: next, reviewOn: review)
        codeIndex = try row[o + 7].bytes()
        let count = try row[o + 8].decode(Int32.self)
        guard count >= 0 else { throw StorageError.integrity(what: "subject row (record count)") }
        records = Int(count)
        recordsHead = try row[o + 9].bytes()
        rowMAC = try row[o + 10].bytes()
        summary = try row[o + 11].optionalBytes()
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

    /// Writes the records `append` staged and the row's code index, columns, record count and
    /// chain head with their MAC, and its sealed summary: one statement, one round trip.
    mutating func save(_ connection: PostgresConnection, keyring: Keyring, logger: Logger) async throws {
        rowMAC = try expectedMAC(keyring: keyring)
        var binds = PostgresBindings(capacity: 9 + 5 * stagedRecords.count)
        var sql = ""
        if !stagedRecords.isEmpty {
            var values: [String] = []
            for staged in stagedRecords {
                let first = binds.count + 1
                binds.append(staged.id)
                binds.append(id)
                binds.append(staged.kind)
                binds.append(Int32(staged.schemaVersion))
                binds.append(staged.sealed.bytea)
                values.append("($\(first), $\(first + 1), $\(first + 2), $\(first + 3), $\(first + 4))")
            }
            sql += """
                WITH inserted AS (INSERT INTO record (id, subject_id, kind, schema_version, sealed) OVERRIDING SYSTEM VALUE
                VALUES \(values.joined(separator: ", ")) RETURNING 1)

                """
        }
        let first = binds.count + 1
        binds.append(codeIndex.bytea)
        binds.append(columns.status.rawValue)
        binds.append(columns.nextDue?.description)
        binds.append(columns.reviewOn?.description)
        binds.append(Int32(records))
        binds.append(recordsHead.bytea)
        binds.append(rowMAC.bytea)
        binds.append(summary?.bytea)
        binds.append(id)
        let inserted = stagedRecords.isEmpty ? "0" : "(SELECT count(*) FROM inserted)"
        sql += """
            UPDATE subject SET code_index = $\(first), status = $\(first + 1), next_due = $\(first + 2), review_on = $\(first + 3),
                records = $\(first + 4), records_head = $\(first + 5), row_mac = $\(first + 6), summary = $\(first + 7)
            WHERE id = $\(first + 8) RETURNING \(inserted)
            """
        let updated = try await connection.rows(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        guard updated.count == 1 else { throw StorageError.database(reason: "a subject row vanished inside its own transaction") }
        guard try updated[0].decode(Int64.self) == Int64(stagedRecords.count) else {
            throw StorageError.database(reason: "the records of a change were not all inserted")
        }
        stagedRecords = []
    }

    /// How many record rows the subject has and the newest one's id (-1 for none), from the
    /// index on (subject_id, id): no record is read or decrypted.
    func recordExtent(_ connection: PostgresConnection, logger: Logger) async throws -> (count: Int, newest: Int64) {
        let row = try await connection.row(
            "SELECT count(*), max(id) FROM record WHERE subject_id = \(id)", logger: logger)
        guard let (count, newest) = try row?.decode((Int64, Int64?).self) else { return (0, -1) }
        return (Int(count), newest ?? -1)
    }

    /// Seals `plaintext` as the summary of the history the row names now, or clears it (docs/
    /// CRYPTO.md §Monitoring summary). Call after `append`.
    mutating func sealSummary(_ connection: PostgresConnection, _ plaintext: [UInt8]?, dek: borrowing SecretBytes, logger: Logger)
        async throws
    {
        guard plaintext != nil else {
            summary = nil
            return
        }
        let newest: Int64
        if let appendedNewest { newest = appendedNewest } else { newest = try await recordExtent(connection, logger: logger).newest }
        summary = try sealedSummary(plaintext, newestRecord: newest, dek: dek)
    }

    /// The subject with only its summary opened: no record decrypted, no case link read (docs/
    /// STORAGE.md §Summary). The row must have been authenticated; `extent` is its records'
    /// count and newest id, read in the same snapshot as the row.
    func summaryView(extent: (count: Int, newest: Int64), keyring: Keyring, slab: SecureSlab, recorder: AuditRecorder?)
        throws(StorageError) -> SubjectView
    {
        try checkExtent(count: extent.count)
        let dek = try dek(keyring: keyring, slab: slab)
        let summary = try openSummary(newestRecord: extent.newest, dek: dek)
        let reference = try recordReference(keyring: keyring, in: recorder)
        return SubjectView(records: [], columns: columns, clinics: [], auditReference: reference, summary: summary)
    }

    /// Opens every record and lists the clinics: the whole view of the subject.
    func view(
        _ connection: PostgresConnection, keyring: Keyring, slab: SecureSlab, recorder: AuditRecorder?, logger: Logger
    ) async throws -> SubjectView {
        let dek = try dek(keyring: keyring, slab: slab)
        return try await view(connection, keyring: keyring, dek: dek, recorder: recorder, logger: logger)
    }

    /// The same, with the subject's DEK already open. The records must be exactly the ones the
    /// row's MAC names (count and chain head), and each case link's MAC must hold.
    func view(
        _ connection: PostgresConnection, keyring: Keyring, dek: borrowing SecretBytes, recorder: AuditRecorder?, logger: Logger
    ) async throws -> SubjectView {
        var rows: [SealedRecordRow] = []
        for row in try await connection.rows(
            "SELECT id, kind, schema_version, sealed FROM record WHERE subject_id = \(id) ORDER BY id", logger: logger)
        {
            let cells = row.makeRandomAccess()
            rows.append(
                SealedRecordRow(
                    id: try cells[0].decode(Int64.self), kind: try cells[1].decode(String.self),
                    schemaVersion: Int64(try cells[2].decode(Int32.self)), sealed: try cells[3].bytes()))
        }
        let records = try openRecords(rows, dek: dek, keyring: keyring)
        var clinics: [ClinicID] = []
        for row in try await connection.rows(
            "SELECT \(unescaped: PostgresCaseLinkRow.selectColumns) FROM case_link c WHERE c.subject_id = \(id) ORDER BY c.id",
            logger: logger)
        {
            let link = try PostgresCaseLinkRow(row.makeRandomAccess())
            try link.authenticate(sid: sid, keyring: keyring)
            if let clinic = ClinicID(link.clinic) { clinics.append(clinic) }
        }
        let summary = try openSummary(newestRecord: records.last?.id ?? -1, dek: dek)
        let reference = try recordReference(keyring: keyring, in: recorder)
        return SubjectView(records: records, columns: columns, clinics: clinics, auditReference: reference, summary: summary)
    }

    /// Seals `records` and stages them for `save`, which inserts them with the row in one
    /// statement, extending the record chain in memory. Their ids are drawn from the identity
    /// sequence first (or given, drawn with the stamp: `stamp(_:drawing:)`), so that each is
    /// bound into its record's associated data; the sequence never hands an id out twice. The
    /// caller must `save` the row afterwards, or the records are never written.
    mutating func append(
        _ connection: PostgresConnection, _ records: [NewRecord], ids drawn: [Int64]? = nil, dek: borrowing SecretBytes,
        keyring: Keyring, logger: Logger
    ) async throws {
        guard !records.isEmpty else { return }
        let ids: [Int64]
        if let drawn {
            ids = drawn
        } else {
            ids = try await PostgresStore.nextIDs(connection, table: "record", count: records.count, logger: logger)
        }
        guard ids.count == records.count else { throw StorageError.database(reason: "record ids drawn for another change") }
        for (record, recordID) in zip(records, ids) {
            let ad = SubjectKeys.recordAD(sid: sid, id: recordID, kind: record.kind.rawValue, schemaVersion: record.schemaVersion)
            let sealed = try SubjectKeys.seal(record.plaintext, dek: dek, ad: ad)
            stagedRecords.append(
                StagedRecord(id: recordID, kind: record.kind.rawValue, schemaVersion: record.schemaVersion, sealed: sealed))
            recordsHead = try RowIntegrity.chain(
                recordsHead, recordID: recordID, kind: record.kind.rawValue, schemaVersion: record.schemaVersion, keyring: keyring)
            self.records += 1
            // Ids come from the identity sequence after the row was locked: no record of this
            // subject can have a higher one.
            appendedNewest = recordID
        }
    }

    /// The stamp `commit` compares (`SealedSubjectRow.stamp`), read in the caller's transaction.
    func stamp(_ connection: PostgresConnection, logger: Logger) async throws -> SubjectStamp {
        try await stamp(connection, drawing: 0, logger: logger).stamp
    }

    /// The stamp, and `count` new record ids drawn in the same statement (ascending; see
    /// `PostgresStore.nextIDs`): a change's check and its ids in one round trip. Call with the
    /// row locked, so that the stamp is read after the lock was granted.
    func stamp(_ connection: PostgresConnection, drawing count: Int, logger: Logger) async throws -> (
        stamp: SubjectStamp, recordIDs: [Int64]
    ) {
        guard let count32 = Int32(exactly: count) else { throw StorageError.database(reason: "\(count) record ids at once") }
        let row = try await connection.row(StampStatement(subject: id, count: count32), logger: logger)
        guard let (newestRecord, records, newestLink, links, ids) = try row?.decode((Int64?, Int64, Int64?, Int64, [Int64]).self)
        else {
            throw StorageError.database(reason: "the stamp query returned no row")
        }
        guard ids.count == count else { throw StorageError.database(reason: "the record sequence returned \(ids.count) ids") }
        return (stamp(newestRecord: newestRecord, records: records, newestLink: newestLink, links: links), ids.sorted())
    }
}

/// A sealed record `append` made, inserted by the next `save`.
struct StagedRecord {
    var id: Int64
    var kind: String
    var schemaVersion: UInt16
    var sealed: [UInt8]
}

/// A case link row read from PostgreSQL; its MAC check is `SealedCaseLinkRow`'s.
struct PostgresCaseLinkRow: SealedCaseLinkRow {
    var id: Int64
    var handleIndex: [UInt8]
    var clinic: String
    var rowMAC: [UInt8]

    static let selectColumns = "c.id, c.handle_index, c.clinic, c.row_mac"
    static let columnCount = 4

    init(_ row: PostgresRandomAccessRow, offset o: Int = 0) throws {
        id = try row[o].decode(Int64.self)
        handleIndex = try row[o + 1].bytes()
        clinic = try row[o + 2].decode(String.self)
        rowMAC = try row[o + 3].bytes()
    }
}
