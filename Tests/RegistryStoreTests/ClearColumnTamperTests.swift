import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

/// A database writer without keys (a DBA, a forged backup, a compromised backup store) rewrites
/// the clear columns with sqlite3, as the review did. Every change that would redirect a lookup,
/// hide a record or bring an erased subject back is refused as an integrity failure, and nothing
/// of another subject is served (docs/CRYPTO.md §Authenticated columns).
struct ClearColumnTamperTests {
    /// Swaps subjects 1 and 2's code indexes through a placeholder, as an attacker bound by the
    /// UNIQUE constraint would: each code then finds the other's row.
    static func swapCodeIndexes(_ f: StoreFixture) throws {
        let indexA = try f.sqlite("SELECT hex(code_index) FROM subject WHERE id = 1")
        let indexB = try f.sqlite("SELECT hex(code_index) FROM subject WHERE id = 2")
        try f.sqlite(
            """
            UPDATE subject SET code_index = X'\(String(repeating: "11", count: 32))' WHERE id = 1;
            UPDATE subject SET code_index = X'\(indexA)' WHERE id = 2;
            UPDATE subject SET code_index = X'\(indexB)' WHERE id = 1;
            """)
    }

    static func isIntegrity(_ error: any Error) -> Bool {
        if case .integrity = error as? StorageError { return true }
        return false
    }

    /// A database writer copies subject B's sid onto subject A's row, moving B's own sid aside
    /// as the UNIQUE constraint demands. Both rows now fail, and the integrity check erases
    /// them. Had it ledgered the sid A's row carries, B would be erased for good, from every
    /// backup too, and unlinking by that sid would empty B's access log: a writer without keys
    /// would have made the daemon destroy B beyond recovery. Only an authenticated sid reaches
    /// the ledger, so a backup from before brings both back, authentic.
    @Test func aForgedSidNeverReachesTheErasureLedger() async throws {
        let f = try StoreFixture()
        let (b, sidB, referenceB, file) = try await Self.twoSubjectsAndABackup(f)

        let hexB = try f.sqlite("SELECT hex(sid) FROM subject WHERE id = 2")
        try f.sqlite(
            """
            UPDATE subject SET sid = randomblob(length(sid)) WHERE id = 2;
            UPDATE subject SET sid = X'\(hexB)' WHERE id = 1;
            """)
        let report = try await f.store.checkIntegrity(actor: "test")
        #expect(report.subjectsErased == 2)
        #expect(try await f.store.subjectCount() == 0)
        let ledger = ErasureLedger(keyring: f.keyring)
        let ledgered = try ledger.read()?.references ?? []
        #expect(!ledgered.contains(try ledger.reference(sid: sidB)), "B's sid was ledgered through a forged row")
        #expect(ledgered.isEmpty, "an unauthenticated sid was ledgered")
        #expect(try await f.store.auditRecords(subjectReference: referenceB).count == 1, "B's access log was unlinked")
        let entries = try await f.store.auditEntries(after: 0, limit: 100).filter { $0.action == "erase-integrity" }
        #expect(entries.count == 2 && entries.allSatisfy { $0.result.contains("nothing ledgered") && $0.subjectCommit == nil })

        // The backup from before restores both subjects, B's code finds B's own record.
        try await Self.restoreBringsBBack(f, file, code: b.code, referenceB: referenceB)
    }

    /// Subjects A and B, an access-log entry linked to B, and a backup of both. Returns B's
    /// receipt, sid and audit reference, and the backup file.
    static func twoSubjectsAndABackup(_ f: StoreFixture) async throws -> (
        b: EnrolmentReceipt, sidB: [UInt8], referenceB: [UInt8], file: String
    ) {
        _ = try await f.enrol(consent: "consent-of-a")
        let b = try await f.enrol(consent: "consent-of-b")
        let sidB = try #require(try await f.store.read { db in try SubjectRow.byID(db, 2)?.sid })
        let referenceB = try SubjectKeys.auditReference(sid: sidB, keyring: f.keyring)
        try await f.store.appendAudit(
            AuditEvent(actor: "clinic clinic-a", action: "read-status", result: "ok", subjectReference: referenceB, subjectKey: sidB))
        #expect(try await f.store.auditRecords(subjectReference: referenceB).count == 1)
        let file = f.tmp.sub("backup.anrgbak")
        try BackupStoreTests.write(try await f.store.prepareBackup(in: f.tmp.path), to: file)
        return (b, sidB, referenceB, file)
    }

    /// Restores `file` with the ledger as it is now: both subjects come back (the ledger erased
    /// nobody), B's code finds B's own record, and B's access log is linked again.
    static func restoreBringsBBack(_ f: StoreFixture, _ file: String, code: String, referenceB: [UInt8]) async throws {
        let ledger = ErasureLedger(keyring: f.keyring)
        let payload = f.tmp.sub("restore.sqlite")
        _ = try BackupArchive.extractPayload(from: file, to: payload)
        let outcome = try BackupStoreTests.restore(
            payload: payload, keyring: f.keyring, ledger: try ledger.read() ?? ErasureLedger.Contents(references: [], macs: []))
        #expect(outcome.erased == 0 && outcome.remaining == 2, "the backup did not bring both subjects back")
        try f.store.close()
        let restored = try SQLiteRegistryStore(path: payload, keyring: f.keyring)
        #expect(try await restored.subject(code: code).plaintexts.contains("consent-of-b"))
        #expect(try await restored.auditRecords(subjectReference: referenceB).count == 1, "B's access log did not come back")
        try restored.close()
    }

    /// A database writer without keys breaks what subject B's row MAC does not cover: it deletes
    /// one of B's record rows (found by the sweep's full check), or zeroes B's wrapped key
    /// (found when the sweeper opens B for review). B's row still authenticates, so the sid is
    /// B's own, and B is erased with its audit links. But the failure proves nothing about B, so
    /// the erasure must not outlast a restore: had it been ledgered, any writer could have the
    /// daemon destroy any subject beyond recovery from backups. Nothing is ledgered, and the
    /// backup from before brings B back, with its access log.
    @Test(arguments: ["delete a record row", "zero the wrapped key"])
    func aBrokenSubjectIsErasedButNeverLedgered(_ attack: String) async throws {
        let f = try StoreFixture()
        let (b, sidB, referenceB, file) = try await Self.twoSubjectsAndABackup(f)

        if attack == "delete a record row" {
            try f.sqlite("DELETE FROM record WHERE id = (SELECT max(id) FROM record WHERE subject_id = 2);")
            let report = try await f.store.checkIntegrity(actor: "test")
            #expect(report.subjectsErased == 1)
        } else {
            try f.sqlite("UPDATE subject SET wrapped_dek = zeroblob(length(wrapped_dek)) WHERE id = 2;")
            let recorder = AuditRecorder(AuditRecorder.Action(actor: Sweeper.auditActor, action: "review"))
            let opening = try await AuditRecorder.$current.withValue(recorder) {
                try await f.store.openForReview(SubjectReference(rawValue: 2))
            }
            guard case .erasedIntegrity = opening else {
                Issue.record("B was not erased: \(opening)")
                return
            }
        }
        #expect(try await f.store.subjectCount() == 1, "only B was erased")
        let ledger = ErasureLedger(keyring: f.keyring)
        #expect((try ledger.read()?.references ?? []).isEmpty, "a writer's damage reached the erasure ledger")
        #expect(try await f.store.auditRecords(subjectReference: referenceB).isEmpty, "B's audit links outlived B")
        let entries = try await f.store.auditEntries(after: 0, limit: 100).filter { $0.action == "erase-integrity" }
        #expect(
            entries.count == 1 && entries.allSatisfy { $0.result.contains("nothing ledgered") && $0.subjectCommit != nil },
            "\(entries.map(\.result))")

        try await Self.restoreBringsBBack(f, file, code: b.code, referenceB: referenceB)
    }

    /// Redirect a case handle: clinic A's link now points at subject B. Today's code served B's
    /// history to clinic A and recorded A's check-ups against B.
    @Test func theHandleSwapIsRefused() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(clinic: StoreFixture.clinicA, consent: "consent-of-a")
        let b = try await f.enrol(clinic: StoreFixture.clinicB, consent: "consent-of-b")
        _ = try await f.addCheckup(b.caseHandle, note: "note-of-b", clinic: StoreFixture.clinicB)
        try f.sqlite("UPDATE case_link SET subject_id = 2 WHERE id = 1;")

        await #expect(throws: (any Error).self) {
            let view = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
            Issue.record("served \(view.plaintexts) to clinic A")
        }
        do { _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA) } catch {
            #expect(Self.isIntegrity(error), "\(error)")
        }
        await #expect(throws: (any Error).self) { _ = try await f.addCheckup(a.caseHandle, note: "meant-for-a") }
        // B carries a link that is not its own: B is refused too until the full check removes
        // it; then B's history is untouched and still B's.
        await #expect(throws: (any Error).self) { _ = try await f.store.subject(case: b.caseHandle, clinic: StoreFixture.clinicB) }
        #expect(try await f.store.checkIntegrity(actor: "test").caseLinksRemoved == 1)
        let seen = try await f.store.subject(case: b.caseHandle, clinic: StoreFixture.clinicB)
        #expect(seen.plaintexts.contains("note-of-b") && !seen.plaintexts.contains("meant-for-a"))
        // The due list of clinic A does not hand out B's handle either.
        #expect(try await f.store.casesDue(clinic: StoreFixture.clinicA, before: Day("2099-01-01")!).isEmpty)
    }

    /// Redirect a patient code: A's code index is moved onto B's row (and B's onto A's). Today's
    /// code showed B's record to whoever held A's code, and a withdrawal with A's code erased B.
    @Test func theCodeSwapIsRefused() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(consent: "consent-of-a")
        _ = try await f.enrol(consent: "consent-of-b")
        try Self.swapCodeIndexes(f)
        do {
            let view = try await f.store.subject(code: a.code)
            Issue.record("served \(view.plaintexts) for A's code")
        } catch { #expect(Self.isIntegrity(error), "\(error)") }
        do {
            try await f.store.erase(code: a.code, counters: [])
            Issue.record("a withdrawal with A's code erased someone")
        } catch { #expect(Self.isIntegrity(error), "\(error)") }
        #expect(try await f.store.subjectCount() == 2, "nobody was erased")
    }

    /// The sweeper opens a subject on a reader and commits its decision later (docs/STORAGE.md
    /// §Changes). A database writer swaps two subjects' code indexes in between, as the review
    /// of the open/commit split did: the commit must not keep the row with a fresh MAC over the
    /// swapped index (B's code would then open A's record), nor erase it under a normal cause.
    @Test(arguments: ["keep", "erase"])
    func aRowRewrittenBetweenTheReviewsOpenAndCommitIsErasedAsTampered(_ decision: String) async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(consent: "consent-of-a")
        let b = try await f.enrol(consent: "consent-of-b")
        let reference = SubjectReference(rawValue: 1)
        let recorder = AuditRecorder(AuditRecorder.Action(actor: Sweeper.auditActor, action: "review"))
        let result = try await AuditRecorder.$current.withValue(recorder) {
            guard case .opened(let opened) = try await f.store.openForReview(reference) else {
                throw StorageError.database(reason: "not opened")
            }
            try Self.swapCodeIndexes(f)
            var columns = opened.view.columns
            columns.reviewOn = Day("2030-01-01")
            return try await f.store.commitReview(
                reference, decision == "keep" ? .keep(columns) : .erase(counters: []), ifUnchanged: opened.stamp)
        }
        #expect(result == .erasedIntegrity)
        #expect(recorder.event(result: "ok")?.action == "erase-integrity")
        // B's code reaches nobody's record: not A's (erased), and not B's (its row fails).
        do {
            let view = try await f.store.subject(code: b.code)
            Issue.record("B's code served \(view.plaintexts)")
        } catch {
            let refused = error == .codeNotFound || Self.isIntegrity(error)
            #expect(refused, "\(error)")
        }
        await #expect(throws: StorageError.caseNotFound) { _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA) }
    }

    /// Delete a check-up row: today the history was silently shorter (remission could appear
    /// earlier than it is).
    @Test func theDeletedCheckupIsDetected() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        _ = try await f.addCheckup(a.caseHandle, note: "first")
        _ = try await f.addCheckup(a.caseHandle, note: "relapse")
        try f.sqlite("DELETE FROM record WHERE id = (SELECT max(id) FROM record);")
        do {
            let view = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
            Issue.record("served a shortened history: \(view.plaintexts)")
        } catch { #expect(Self.isIntegrity(error), "\(error)") }
        // The full check finds it without anyone reading the case, and erases the subject.
        let report = try await f.store.checkIntegrity(actor: "test")
        #expect(report.subjectsErased == 1)
        #expect(try await f.store.subjectCount() == 0)
    }

    /// Replay an old check-up row: the sealed bytes of an earlier check-up are put back as a new
    /// row of the same subject. The record set is not the one its row names.
    @Test func theReplayedOldCheckupRowIsDetected() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        _ = try await f.addCheckup(a.caseHandle, note: "remission-1")
        try f.sqlite(
            """
            INSERT INTO record (subject_id, kind, schema_version, sealed)
            SELECT subject_id, kind, schema_version, sealed FROM record WHERE kind = 'checkup';
            """)
        await #expect(throws: (any Error).self) { _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA) }
        // The record chain alone catches it, without opening a blob: the full check erases it.
        let report = try await f.store.checkIntegrity(actor: "test")
        #expect(report.subjectsErased == 1)
        #expect(try await f.store.subjectCount() == 0)
    }

    /// A clear column rewritten (status, dates, KEK version) fails the row's MAC; the full check
    /// erases the subject and audits it.
    @Test(arguments: [
        "UPDATE subject SET review_on = '2099-12-31'",
        "UPDATE subject SET status = 'completed'",
        "UPDATE subject SET next_due = '2099-01-01'",
        "UPDATE subject SET kek_version = 99",
        "UPDATE subject SET row_mac = zeroblob(32)",
        "UPDATE subject SET records = records - 1",
    ])
    func aRewrittenClearColumnFailsItsMAC(_ sql: String) async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        let control = try await f.enrol()
        try f.sqlite(sql + " WHERE id = 1;")
        do {
            _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
            Issue.record("\(sql): served")
        } catch { #expect(Self.isIntegrity(error), "\(sql): \(error)") }
        let report = try await f.store.checkIntegrity(actor: "system sweeper")
        #expect(report.subjectsErased == 1, "\(sql)")
        #expect(try await f.store.subjectCount() == 1)
        _ = try await f.store.subject(case: control.caseHandle, clinic: StoreFixture.clinicA)
        let audited = try f.sqlite("SELECT count(*) FROM audit_entry WHERE action = 'erase-integrity' AND actor = 'system sweeper'")
        #expect(audited == "1")
    }

    /// A case link whose MAC fails is removed by the full check; the subject stays reachable by
    /// its code.
    @Test func aRedirectedLinkIsRemovedByTheFullCheck() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(clinic: StoreFixture.clinicA)
        _ = try await f.enrol(clinic: StoreFixture.clinicB)
        try f.sqlite("UPDATE case_link SET row_mac = zeroblob(32) WHERE id = 1;")
        let report = try await f.store.checkIntegrity(actor: "test")
        #expect(report.caseLinksRemoved == 1 && report.subjectsErased == 0)
        await #expect(throws: StorageError.caseNotFound) { _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA) }
        _ = try await f.store.subject(code: a.code)
    }

    /// A subject put back after its erasure, rows copied from an older copy of the database:
    /// the erasure ledger names it, so it is refused and erased again (invariant 8: nobody keeps
    /// a subject past its erasure without the daemon noticing).
    @Test func aSubjectRestoredBehindAnonregsBackAfterItsErasureIsRefused() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(consent: "consent-of-a")
        _ = try await f.addCheckup(a.caseHandle, note: "note-of-a")
        let copy = f.tmp.sub("old-copy.sqlite")
        try f.sqlite(
            """
            ATTACH '\(copy)' AS old;
            CREATE TABLE old.subject AS SELECT * FROM main.subject;
            CREATE TABLE old.case_link AS SELECT * FROM main.case_link;
            CREATE TABLE old.record AS SELECT * FROM main.record;
            """)
        try await f.store.erase(case: a.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        try f.sqlite(
            """
            ATTACH '\(copy)' AS old;
            INSERT INTO main.subject SELECT * FROM old.subject;
            INSERT INTO main.case_link SELECT * FROM old.case_link;
            INSERT INTO main.record SELECT * FROM old.record;
            """)
        do {
            let view = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
            Issue.record("an erased subject was served again: \(view.plaintexts)")
        } catch { #expect(Self.isIntegrity(error), "\(error)") }
        let report = try await f.store.checkIntegrity(actor: "test")
        #expect(report.subjectsErased == 1)
        #expect(try await f.store.subjectCount() == 0)
    }

    /// A daemon restarted on that database knows the ledger too (loaded at start).
    @Test func theLedgerIsCheckedAfterARestart() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        let copy = f.tmp.sub("old-copy.sqlite")
        try f.sqlite(
            "ATTACH '\(copy)' AS old; CREATE TABLE old.subject AS SELECT * FROM main.subject; CREATE TABLE old.case_link AS SELECT * FROM main.case_link; CREATE TABLE old.record AS SELECT * FROM main.record;"
        )
        try await f.store.erase(case: a.caseHandle, clinic: StoreFixture.clinicA, counters: [])
        try f.store.close()
        try f.sqlite(
            "ATTACH '\(copy)' AS old; INSERT INTO main.subject SELECT * FROM old.subject; INSERT INTO main.case_link SELECT * FROM old.case_link; INSERT INTO main.record SELECT * FROM old.record;"
        )
        let reopened = try SQLiteRegistryStore(path: f.tmp.sub("registry.sqlite"), keyring: f.keyring)
        _ = try reopened.checkErasureLedger()
        await #expect(throws: (any Error).self) { _ = try await reopened.subject(case: a.caseHandle, clinic: StoreFixture.clinicA) }
        try reopened.close()
    }

    /// Nothing untouched ever fails: a full check of a busy store erases nothing.
    @Test func anUntouchedStorePassesTheFullCheck() async throws {
        let f = try StoreFixture()
        var handles: [CaseHandle] = []
        for i in 0..<30 { handles.append(try await f.enrol(clinic: i % 2 == 0 ? StoreFixture.clinicA : StoreFixture.clinicB).caseHandle) }
        for (i, handle) in handles.enumerated() where i % 2 == 0 { _ = try await f.addCheckup(handle, note: "n\(i)") }
        _ = try await f.store.rewrapBatch(limit: 100)
        let report = try await f.store.checkIntegrity(actor: "test", batch: 7)
        #expect(report.subjectsChecked == 30 && report.caseLinksChecked == 30)
        #expect(report.failures == 0)
    }

    // MARK: - Found by the review of this change

    /// A writer drops the MAC columns and strikes `v4-row-macs` from `grdb_migrations`, so that the
    /// next start would MAC the rows they forged. The schema mark beside the keyring refuses it.
    @Test func aDatabaseRolledBackBehindItsSchemaMarkIsRefused() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol(clinic: StoreFixture.clinicA)
        _ = try await f.enrol(clinic: StoreFixture.clinicB)
        try f.store.close()
        try f.sqlite(
            """
            UPDATE case_link SET subject_id = 2 WHERE id = 1;
            ALTER TABLE subject DROP COLUMN records; ALTER TABLE subject DROP COLUMN records_head; ALTER TABLE subject DROP COLUMN row_mac;
            ALTER TABLE case_link DROP COLUMN row_mac;
            DELETE FROM grdb_migrations WHERE identifier = 'v4-row-macs';
            """)
        #expect(throws: StorageError.self) { _ = try SQLiteRegistryStore(path: f.tmp.sub("registry.sqlite"), keyring: f.keyring) }
        #expect(!(try f.sqlite("SELECT group_concat(name) FROM pragma_table_info('subject')")).contains("row_mac"), "no migration ran")
        #expect(try f.sqlite("SELECT count(*) FROM grdb_migrations WHERE identifier = 'v4-row-macs'") == "0")
        _ = a
    }

    /// The full check starts below every id: a subject moved to a negative id (its links and
    /// records with it) is checked too, and the MAC binds the row id.
    @Test func aSubjectMovedToANegativeIdIsStillChecked() async throws {
        let f = try StoreFixture()
        _ = try await f.enrol()
        _ = try await f.enrol()
        try f.sqlite(
            """
            UPDATE record SET subject_id = -1 WHERE subject_id = 1; UPDATE case_link SET subject_id = -1 WHERE subject_id = 1;
            UPDATE subject SET id = -1, review_on = NULL WHERE id = 1;
            """)
        let report = try await f.store.checkIntegrity(actor: "test")
        #expect(report.subjectsErased == 1, "\(report)")
        #expect(try await f.store.subjectCount() == 1)
    }

    /// A store opened with another registry's keyring refuses at once, before the sweeper could
    /// find every row failing and erase them all.
    @Test func anotherKeyringIsRefusedBeforeAnythingIsErased() async throws {
        let f = try StoreFixture()
        for _ in 0..<3 { _ = try await f.enrol() }
        try f.store.close()
        let other = try Keyring.create(in: f.tmp.sub("other-keys"))
        #expect(throws: StorageError.self) { _ = try SQLiteRegistryStore(path: f.tmp.sub("registry.sqlite"), keyring: other) }
        #expect(try f.sqlite("SELECT count(*) FROM subject") == "3")
    }

    /// When more than 10 rows and more than a quarter of the subjects fail, the check erases
    /// nothing and reports them as suspended.
    @Test func aMassFailureErasesNothing() async throws {
        let f = try StoreFixture()
        for _ in 0..<20 { _ = try await f.enrol() }
        try f.sqlite("UPDATE subject SET row_mac = zeroblob(32) WHERE id <= 12;")
        let report = try await f.store.checkIntegrity(actor: "test")
        #expect(report.suspended == 12 && report.subjectsErased == 0, "\(report)")
        #expect(try await f.store.subjectCount() == 20)
    }

    /// A cell of the wrong type (text in an integer column passes its CHECK) is an integrity
    /// failure, never a crash of the daemon.
    @Test func aCellOfTheWrongTypeIsAnIntegrityFailure() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        _ = try await f.enrol()
        try f.sqlite("UPDATE subject SET records = 'x' WHERE id = 1;")
        do {
            _ = try await f.store.subject(case: a.caseHandle, clinic: StoreFixture.clinicA)
            Issue.record("served")
        } catch { #expect(Self.isIntegrity(error), "\(error)") }
        #expect(try await f.store.checkIntegrity(actor: "test").subjectsErased == 1)
    }

    /// A case link inserted for a clinic that does not hold the case never shows in the list of
    /// clinics a patient sees.
    @Test func aPlantedClinicLinkIsRefused() async throws {
        let f = try StoreFixture()
        let a = try await f.enrol()
        try f.sqlite(
            """
            INSERT INTO case_link (handle_index, clinic, subject_id, sealed_handle, row_mac)
            SELECT zeroblob(32), 'police-liaison', subject_id, sealed_handle, row_mac FROM case_link WHERE id = 1;
            """)
        do {
            let view = try await f.store.subject(code: a.code)
            Issue.record("served \(view.clinics)")
        } catch { #expect(Self.isIntegrity(error), "\(error)") }
    }
}
