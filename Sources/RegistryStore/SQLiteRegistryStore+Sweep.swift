import Foundation
internal import GRDB
import RegistryCore
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
    /// columns). A missing KEK is not tampering: the subject is skipped (the caller reports it).
    public func sweep(
        _ subject: SubjectReference,
        _ decide: @escaping @Sendable (SubjectView) throws(StorageError) -> SweepDecision
    ) async throws(StorageError) -> SweepResult {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let writer = self.writer
        // Only an erasure asks for the WAL truncation; a batch of keeps does not checkpoint.
        return try await write { db in
            let keyring = self.keyring
            guard let raw = try Row.fetchOne(db, sql: "SELECT sid FROM subject WHERE id = ?", arguments: [subject.rawValue]) else {
                return .gone
            }
            var row: SubjectRow
            let view: SubjectView
            do {
                guard let fetched = try SubjectRow.byID(db, subject.rawValue) else { return .gone }
                row = fetched
                try row.authenticate(keyring: keyring, erased: self.erased)
                view = try row.view(db, keyring: keyring, slab: self.dekSlab, recorder: recorder)
            } catch let error as StorageError where error.isIntegrityFailure {
                recorder?.describe(AuditRecorder.Action(actor: Sweeper.auditActor, action: "erase-integrity"))
                try Self.erase(
                    db, id: subject.rawValue, sid: Array(raw[0] as Data), counters: [], keyring: keyring, recorder: recorder,
                    checkpointEvery: every, erased: self.erased)
                writer.requestTruncation()
                return .erasedIntegrity
            }
            switch try decide(view) {
            case .keep(let columns):
                if columns != row.columns {
                    row.columns = columns
                    try row.save(db, keyring: keyring)
                }
                return .kept
            case .erase(let counters):
                try Self.erase(
                    db, id: row.id, sid: row.sid, counters: counters, keyring: keyring, recorder: recorder,
                    checkpointEvery: every, erased: self.erased)
                writer.requestTruncation()
                return .erased
            }
        }
    }
}

extension StorageError {
    /// Tampering, as opposed to an operator problem (a missing KEK) or a database failure.
    var isIntegrityFailure: Bool {
        switch self {
        case .integrity, .tampered: true
        default: false
        }
    }
}
