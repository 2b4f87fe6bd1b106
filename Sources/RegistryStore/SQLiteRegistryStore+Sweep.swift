import Foundation
import GRDB
import RegistryCore
import RegistryProtocol

extension SQLiteRegistryStore {
    public func subjectsToReview(onOrBefore day: Day, limit: Int) async throws(StorageError) -> [SubjectReference] {
        try await read { db in
            try Int64.fetchAll(db, sql: """
                SELECT id FROM subject WHERE review_on IS NOT NULL AND review_on <= ? ORDER BY review_on, id LIMIT ?
                """, arguments: [day.description, max(0, limit)]).map(SubjectReference.init(rawValue:))
        }
    }

    public func sweep(
        _ subject: SubjectReference,
        _ decide: @escaping @Sendable (SubjectView) throws(StorageError) -> SweepDecision
    ) async throws(StorageError) -> SweepResult {
        let keyring = self.keyring
        let recorder = AuditRecorder.current
        let writer = self.writer
        let every = auditCheckpointEvery
        // Only an erasure asks for the WAL truncation; a batch of keeps does not checkpoint.
        return try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT \(SubjectRow.selectColumns) FROM subject s WHERE s.id = ?",
                                             arguments: [subject.rawValue]) else { return .gone }
            let subjectRow = try SubjectRow(row: row)
            switch try decide(try subjectRow.view(db, keyring: self.keyring, slab: self.dekSlab, recorder: recorder)) {
            case .keep(let columns):
                if columns != subjectRow.columns { try subjectRow.setColumns(db, columns) }
                return .kept
            case .erase(let counters):
                try Self.erase(db, subject: subjectRow, counters: counters, keyring: keyring, recorder: recorder, checkpointEvery: every)
                writer.requestTruncation()
                return .erased
            }
        }
    }
}
