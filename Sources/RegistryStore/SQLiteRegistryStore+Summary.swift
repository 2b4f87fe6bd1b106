import Foundation
internal import GRDB
import RegistryCore
import RegistryFormats
import RegistryProtocol

/// The monitoring summary's backfill (docs/STORAGE.md §Summary): subjects written before
/// `v5-sealed-summary`, or whose summary was cleared, get one from `SummaryBackfill` while the
/// daemon serves. Each batch is one transaction; progress is the set of rows still without a
/// summary, so a crash at any moment leaves a state the next pass resumes from.
extension SQLiteRegistryStore {
    public func subjectsWithoutSummary(after: SubjectReference?, limit: Int) async throws(StorageError) -> [SubjectReference] {
        try await read { db in
            try Int64.fetchAll(
                db, sql: "SELECT id FROM subject WHERE summary IS NULL AND id > ? ORDER BY id LIMIT ?",
                arguments: [after?.rawValue ?? .min, max(0, limit)]
            ).map(SubjectReference.init(rawValue:))
        }
    }

    public func openForSummary(_ subject: SubjectReference) async throws(StorageError) -> OpenedSubject? {
        try await read { db -> OpenedSubject? in
            guard let row = try SubjectRow.byID(db, subject.rawValue) else { return nil }
            // The keyring as it is now, after the row was read (SubjectRow.dek).
            let keyring = self.keyring
            try row.authenticate(keyring: keyring, erased: self.erased)
            let view = try row.view(db, keyring: keyring, slab: self.dekSlab)
            return OpenedSubject(view: view, stamp: try row.stamp(db))
        }
    }

    /// A bulk write, like a rewrap batch: requests queued meanwhile commit right after it. Only
    /// the summary column changes; the row MAC does not cover it (its associated data binds it
    /// to the history the MAC does cover).
    public func storeSummaries(_ updates: [SummaryUpdate]) async throws(StorageError) -> Int {
        guard !updates.isEmpty else { return 0 }
        return try await write(bulk: true) { db -> Int in
            var stored = 0
            for update in updates {
                guard var row = try SubjectRow.byID(db, update.subject.rawValue), row.summary == nil else { continue }
                guard try row.stamp(db) == update.stamp else { continue }
                let keyring = self.keyring
                do {
                    try row.authenticate(keyring: keyring, erased: self.erased)
                    let dek = try row.dek(keyring: keyring, slab: self.dekSlab)
                    try row.sealSummary(db, update.summary, dek: dek)
                } catch {
                    // Failed since it was opened: left to the integrity check, and the rest of
                    // the batch is stored.
                    continue
                }
                try db.executeCached("UPDATE subject SET summary = ? WHERE id = ?", [row.summary.map { Data($0) }, row.id])
                stored += 1
            }
            return stored
        }
    }
}
