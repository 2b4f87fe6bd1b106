import Foundation
internal import GRDB
import RegistryCore
import RegistryKeyring
import RegistryProtocol

extension SQLiteRegistryStore {
    public func subjectsToReview(onOrBefore day: Day, limit: Int) async throws(StorageError) -> [SubjectReference] {
        try await read { db in
            try Int64.fetchAll(
                db,
                sql: """
                    SELECT id FROM subject WHERE review_on IS NOT NULL AND review_on <= ? ORDER BY review_on, id LIMIT ?
                    """, arguments: [day.description, max(0, limit)]
            ).map(SubjectReference.init(rawValue:))
        }
    }

    /// A subject whose row fails its MAC, whose records are not the set its row names, whose
    /// sealed records fail to open, or who is named in the erasure ledger, is erased now
    /// (`erasedIntegrity`, audited as `erase-integrity`): what the sweeper would decide cannot be
    /// trusted, and it must never outlive its sealed dates (docs/CRYPTO.md §Authenticated
    /// columns). A missing KEK is not tampering: it is thrown, and the caller reports it.
    ///
    /// The open is a read, as a check-up's is; only a failure goes to the writer, which looks
    /// again before it erases (a write committed in between may have been the whole story).
    public func openForReview(_ subject: SubjectReference) async throws(StorageError) -> ReviewOpening {
        let recorder = AuditRecorder.current
        let opened: OpenedSubject?
        do {
            opened = try await read { db -> OpenedSubject? in
                guard let row = try SubjectRow.byID(db, subject.rawValue) else { return nil }
                // The keyring as it is now, after the row was read (SubjectRow.dek).
                let keyring = self.keyring
                try row.authenticate(keyring: keyring, erased: self.erased)
                let view = try row.view(db, keyring: keyring, slab: self.dekSlab, recorder: recorder)
                return OpenedSubject(view: view, stamp: try row.stamp(db))
            }
        } catch let error where error.isIntegrityFailure {
            return try await eraseFailingReview(subject)
        }
        return opened.map(ReviewOpening.opened) ?? .gone
    }

    /// The writer's second look at a subject whose review open failed its integrity check:
    /// erased if it still fails, opened if it now passes.
    private func eraseFailingReview(_ subject: SubjectReference) async throws(StorageError) -> ReviewOpening {
        let recorder = AuditRecorder.current
        return try await write { db in
            guard let row = try SubjectRow.byID(db, subject.rawValue) else { return .gone }
            // The keyring as it is now, after the row was read (SubjectRow.dek).
            let keyring = self.keyring
            do {
                try row.authenticate(keyring: keyring, erased: self.erased)
                let view = try row.view(db, keyring: keyring, slab: self.dekSlab, recorder: recorder)
                return .opened(OpenedSubject(view: view, stamp: try row.stamp(db)))
            } catch let error as StorageError where error.isIntegrityFailure {
                try self.eraseForIntegrity(db, subject, keyring: keyring, recorder: recorder)
                return .erasedIntegrity
            }
        }
    }

    /// The writer authenticates the row again before it applies anything: the stamp holds the
    /// row MAC the open saw, and only a row whose MAC verifies now can be that row unchanged. A
    /// row that fails (its clear columns were rewritten between the open and the commit, by
    /// someone who can write the database) is erased as `erase-integrity`, never kept with a
    /// fresh MAC over what was written behind anonreg's back, nor erased under a normal cause.
    public func commitReview(_ subject: SubjectReference, _ decision: SweepDecision, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError) -> SweepResult
    {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let writer = self.writer
        // Only an erasure asks for the WAL truncation; a batch of keeps does not checkpoint.
        return try await write { db in
            guard var row = try SubjectRow.byID(db, subject.rawValue) else { return .gone }
            let keyring = self.keyring
            do { try row.authenticate(keyring: keyring, erased: self.erased) } catch let error as StorageError
                where error.isIntegrityFailure
            {
                try self.eraseForIntegrity(db, subject, keyring: keyring, recorder: recorder)
                return .erasedIntegrity
            }
            guard try row.stamp(db) == stamp else { throw StorageError.subjectChanged }
            switch decision {
            case .keep(let columns):
                if columns != row.columns {
                    row.columns = columns
                    try row.save(db, keyring: keyring)
                }
                return .kept
            case .erase(let counters):
                try row.recordReference(keyring: keyring, in: recorder)
                try Self.erase(
                    db, id: row.id, sid: row.sid, counters: counters, keyring: keyring, recorder: recorder,
                    checkpointEvery: every, erased: self.erased)
                writer.requestTruncation()
                return .erased
            }
        }
    }

    /// Erases a subject that failed its integrity check, audited as `erase-integrity`
    /// (docs/CRYPTO.md §Authenticated columns), in the caller's write.
    private func eraseForIntegrity(_ db: Database, _ subject: SubjectReference, keyring: Keyring, recorder: AuditRecorder?) throws {
        recorder?.describe(AuditRecorder.Action(actor: Sweeper.auditActor, action: "erase-integrity"))
        if try Self.eraseFailingRow(
            db, id: subject.rawValue, keyring: keyring, recorder: recorder, checkpointEvery: auditCheckpointEvery, erased: erased)
        {
            writer.requestTruncation()
        }
    }
}
