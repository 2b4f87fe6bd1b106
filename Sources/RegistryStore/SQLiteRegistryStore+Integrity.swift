import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

/// Authenticated lookups and the full integrity check (docs/CRYPTO.md §Authenticated columns).
extension SQLiteRegistryStore {
    /// The subject behind a clinic's handle, with the case link's MAC (handle index, clinic, row
    /// id, the sid it points at) and the subject row's MAC checked, and the subject absent from
    /// the erasure ledger. A failure throws `.integrity` and nothing of either row is used.
    func subject(_ db: Database, handleIndex: [UInt8], clinic: ClinicID) throws -> SubjectRow? {
        guard let (subject, link) = try CaseLinkRow.byCase(db, handleIndex: handleIndex, clinic: clinic) else { return nil }
        let keyring = self.keyring
        try link.authenticate(sid: subject.sid, keyring: keyring)
        try subject.authenticate(keyring: keyring, erased: erased)
        return subject
    }

    /// The subject holding a code, its row's MAC (which binds the code index) checked.
    func subject(_ db: Database, codeIndex: [UInt8]) throws -> SubjectRow? {
        guard let subject = try SubjectRow.byCodeIndex(db, codeIndex) else { return nil }
        try subject.authenticate(keyring: keyring, erased: erased)
        return subject
    }

    /// Checks every subject row (its MAC, its record chain, the erasure ledger) and every case
    /// link (its MAC), reading in batches while requests go on; then erases every subject that
    /// failed and removes every case link that failed, each in its own transaction with an
    /// audit entry (`erase-integrity`, `remove-case-link-integrity`). A subject whose clear
    /// columns were changed behind anonreg's back is erased now: it must never outlive what its
    /// sealed dates allow (docs/CRYPTO.md §Authenticated columns). The sweeper runs this first,
    /// at start and every day.
    public func checkIntegrity(actor: String) async throws(StorageError) -> IntegrityReport {
        try await checkIntegrity(actor: actor, batch: 1000)
    }

    func checkIntegrity(actor: String, batch: Int) async throws(StorageError) -> IntegrityReport {
        var report = IntegrityReport()
        var after: Int64 = .min
        var badSubjects: [Int64] = []
        var badLinks: [Int64] = []
        while true {
            let keyring = self.keyring
            let erased = self.erased
            let from = after
            let (scanned, last, subjects, links, failedSubjects, failedLinks) = try await read { db in
                try Self.scanIntegrity(db, after: from, limit: batch, keyring: keyring, erased: erased)
            }
            report.subjectsChecked += scanned
            report.caseLinksChecked += links
            badSubjects += failedSubjects
            badLinks += failedLinks
            _ = subjects
            guard let last, scanned == batch else { break }
            after = last
        }
        // A mass failure is not tampering with a few rows but a wrong keyring or a software
        // fault: nothing is erased, and the daemon says so at critical (docs/CRYPTO.md
        // §Authenticated columns, "Brake").
        if badSubjects.count + badLinks.count > Self.integrityBrake(checked: report.subjectsChecked) {
            report.suspended = badSubjects.count + badLinks.count
            return report
        }
        for id in badLinks {
            if try await removeCaseLinkFailingIntegrity(id: id, actor: actor) { report.caseLinksRemoved += 1 }
        }
        for id in badSubjects {
            if try await eraseFailingIntegrity(SubjectReference(rawValue: id), actor: actor) { report.subjectsErased += 1 }
        }
        return report
    }

    /// The most failures one check acts on (`IntegrityScan.brake`).
    static func integrityBrake(checked: Int) -> Int { IntegrityScan.brake(checked: checked) }

    /// One batch of the scan (`IntegrityScan`): subjects with id > `after`, their records' chain
    /// and their case links. Returns how many subjects were read, the last id, and the ids that
    /// failed.
    static func scanIntegrity(
        _ db: Database, after: Int64, limit: Int, keyring: Keyring, erased: ErasedSubjects
    ) throws -> (Int, Int64?, Int, Int, [Int64], [Int64]) {
        var scan = IntegrityScan(keyring: keyring, erased: erased)
        for row in try Row.fetchAll(
            db, sql: "SELECT \(SubjectRow.selectColumns) FROM subject s WHERE s.id > ? ORDER BY s.id LIMIT ?",
            arguments: [after, limit])
        {
            scan.subject(id: row[0]) { try SubjectRow(row: row) }
        }
        guard let first = scan.order.first, let last = scan.order.last else { return (0, nil, 0, 0, [], []) }
        let records = try Row.fetchCursor(
            db,
            sql: """
                SELECT subject_id, id, kind, schema_version FROM record WHERE subject_id BETWEEN ? AND ? ORDER BY subject_id, id
                """, arguments: [first, last])
        while let row = try records.next() {
            try scan.record(subjectID: row[0], id: row[1], kind: row[2], schemaVersion: row[3])
        }
        for row in try Row.fetchAll(
            db,
            sql: """
                SELECT \(CaseLinkRow.selectColumns), c.subject_id FROM case_link c WHERE c.subject_id BETWEEN ? AND ? ORDER BY c.id
                """, arguments: [first, last])
        {
            scan.link(id: row[0], subjectID: row[CaseLinkRow.columnCount]) { try CaseLinkRow(row: row) }
        }
        let failed = scan.failedSubjects()
        return (scan.order.count, last, scan.order.count - failed.count, scan.links, failed, scan.failedLinks)
    }

    /// Erases the subject `reference` names if it still fails its integrity check in the writer
    /// (its row MAC, its record chain or the erasure ledger): crypto-shredding with an erasure
    /// ledger entry and an `erase-integrity` audit entry, no counters. Returns whether it did.
    func eraseFailingIntegrity(_ reference: SubjectReference, actor: String) async throws(StorageError) -> Bool {
        let keyring = self.keyring
        let erased = self.erased
        let every = auditCheckpointEvery
        let recorder = AuditRecorder(AuditRecorder.Action(actor: actor, action: "erase-integrity"))
        let done = try await write(checkpointAfter: true) { db -> Bool in
            let rows = try Self.scanIntegrity(db, after: reference.rawValue - 1, limit: 1, keyring: keyring, erased: erased)
            guard rows.1 == reference.rawValue, rows.4.contains(reference.rawValue) else { return false }
            return try Self.eraseFailingRow(
                db, id: reference.rawValue, keyring: keyring, recorder: recorder, checkpointEvery: every, erased: erased)
        }
        return done
    }

    /// The erasure of a subject row that failed its integrity check, in the caller's write
    /// (docs/CRYPTO.md §Authenticated columns, "Erasing a row that fails").
    ///
    /// A database writer without keys can make any subject fail: rewrite a clear column, delete
    /// one of its record rows, flip a byte of its wrapped key or of a sealed record. So the
    /// failure itself proves nothing about the subject, and nothing it leads to may outlast a
    /// restore: the erasure is not ledgered, so a backup from before brings back the subject's
    /// last authentic state, which its own sealed dates then govern. Ledgering it would have
    /// the daemon erase the subject for good, from every backup too, on a writer's say-so.
    ///
    /// A row whose MAC holds carries the subject's own `sid`: its audit links are removed with
    /// its rows (a restore brings the backup's links back with the backup) and the entry names
    /// it. A row whose MAC fails may carry another, living subject's `sid`: nothing keyed by it
    /// is touched. The one exception is a row whose MAC holds and whose `sid` the erasure ledger
    /// already names: its erasure was decided by anonreg before (rows put back from an old
    /// copy, or an erasure that did not complete), so it is finished like any other. Returns
    /// whether a row was erased.
    static func eraseFailingRow(
        _ db: Database, id: Int64, keyring: Keyring, recorder: AuditRecorder?, checkpointEvery: Int, erased: ErasedSubjects?
    ) throws -> Bool {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT \(SubjectRow.selectColumns) FROM subject s WHERE s.id = ?", arguments: [id])
        else { return false }
        let authentic: SubjectRow? = (try? SubjectRow(row: row)).flatMap { subject in
            (try? subject.authenticate(keyring: keyring, erased: nil)) != nil ? subject : nil
        }
        if let subject = authentic {
            // Its own sid: its audit links go with its rows, as with any erasure (a restore
            // brings back the backup's links with the backup).
            let named = try erased.map { try $0.contains(ErasureLedger(keyring: keyring).reference(sid: subject.sid)) } ?? false
            if !named { recorder?.note("its records failed: nothing ledgered, a backup brings back its last authentic state") }
            try erase(
                db, id: id, sid: subject.sid, counters: [], keyring: keyring, recorder: recorder, checkpointEvery: checkpointEvery,
                erased: erased, ledger: named)
            return true
        }
        try delete(db, subjectID: id)
        recorder?.markErased()
        recorder?.note("row not authenticated: its sid is not trusted, nothing ledgered")
        try auditEffect(db, recorder: recorder, checkpointEvery: checkpointEvery, keyring: keyring)
        return true
    }

    /// Removes a case link whose MAC fails (a handle redirected to another subject): the clinic's
    /// handle then finds nothing; the subject stays reachable by its code.
    func removeCaseLinkFailingIntegrity(id: Int64, actor: String) async throws(StorageError) -> Bool {
        let keyring = self.keyring
        let every = auditCheckpointEvery
        return try await write { db -> Bool in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT \(CaseLinkRow.selectColumns), s.sid FROM case_link c JOIN subject s ON s.id = c.subject_id WHERE c.id = ?
                        """, arguments: [id])
            else { return false }
            let sid = Array(row[CaseLinkRow.columnCount] as Data)
            do {
                try CaseLinkRow(row: row).authenticate(sid: sid, keyring: keyring)
                return false
            } catch {}
            try db.execute(sql: "DELETE FROM case_link WHERE id = ?", arguments: [id])
            try Self.appendChained(
                db, event: AuditEvent(actor: actor, action: "remove-case-link-integrity", result: "ok", subjectReference: nil),
                at: Self.timestamp(), checkpointEvery: every, keyring: keyring)
            return true
        }
    }
}

extension SQLiteRegistryStore {
    /// Opens every subject's sealed state: its row authenticated, its data key unwrapped, every
    /// record opened and its record chain checked (the trial restore of docs/OPERATIONS.md
    /// §Backups). Returns how many opened and how many did not.
    public func openEverySubject(batch: Int = 200) async throws(StorageError) -> (opened: Int, failed: Int) {
        var after: Int64 = .min
        var opened = 0
        var failed = 0
        while true {
            let from = after
            let (ids, ok, bad) = try await read { db -> ([Int64], Int, Int) in
                var ok = 0
                var bad = 0
                var ids: [Int64] = []
                for row in try Row.fetchAll(
                    db, sql: "SELECT \(SubjectRow.selectColumns) FROM subject s WHERE s.id > ? ORDER BY s.id LIMIT ?",
                    arguments: [from, batch])
                {
                    ids.append(row[0])
                    do {
                        let subject = try SubjectRow(row: row)
                        try subject.authenticate(keyring: self.keyring, erased: self.erased)
                        _ = try subject.view(db, keyring: self.keyring, slab: self.dekSlab)
                        ok += 1
                    } catch {
                        bad += 1
                    }
                }
                return (ids, ok, bad)
            }
            opened += ok
            failed += bad
            guard let last = ids.last, ids.count == batch else { return (opened, failed) }
            after = last
        }
    }
}

extension RowIntegrity {
    /// Migration v4-row-macs: the MACs of rows that existed before it, computed from their
    /// values as they are (the migration runs on the registry's own database, or on a backup
    /// being restored after its signature was checked).
    static func authenticateExistingRows(_ db: Database, keyring: Keyring) throws {
        var chains: [Int64: (count: Int, head: [UInt8])] = [:]
        let records = try Row.fetchCursor(db, sql: "SELECT subject_id, id, kind, schema_version FROM record ORDER BY subject_id, id")
        while let row = try records.next() {
            let subjectID: Int64 = row[0]
            let schema: Int = row[3]
            var step = chains[subjectID] ?? (0, genesis)
            step.head = try chain(step.head, recordID: row[1], kind: row[2], schemaVersion: UInt16(clamping: schema), keyring: keyring)
            step.count += 1
            chains[subjectID] = step
        }
        // The schema of this migration's time: no summary column yet (v5-sealed-summary).
        let subjects = try Row.fetchAll(db, sql: "SELECT \(SubjectRow.selectColumnsBeforeSummary) FROM subject s ORDER BY s.id")
        var sids: [Int64: [UInt8]] = [:]
        for row in subjects {
            var subject = try SubjectRow(row: row)
            let chain = chains[subject.id] ?? (0, genesis)
            subject.records = chain.count
            subject.recordsHead = chain.head
            subject.rowMAC = try subject.expectedMAC(keyring: keyring)
            try db.execute(
                sql: "UPDATE subject SET records = ?, records_head = ?, row_mac = ? WHERE id = ?",
                arguments: [subject.records, Data(subject.recordsHead), Data(subject.rowMAC), subject.id])
            sids[subject.id] = subject.sid
        }
        for row in try Row.fetchAll(db, sql: "SELECT \(CaseLinkRow.selectColumns), c.subject_id FROM case_link c") {
            let link = try CaseLinkRow(row: row)
            guard let sid = sids[row[CaseLinkRow.columnCount]] else { continue }
            let mac = try linkMAC(linkID: link.id, handleIndex: link.handleIndex, clinic: link.clinic, sid: sid, keyring: keyring)
            try db.execute(sql: "UPDATE case_link SET row_mac = ? WHERE id = ?", arguments: [Data(mac), link.id])
        }
    }
}
