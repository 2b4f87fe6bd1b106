import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryProtocol

extension SQLiteRegistryStore {
    /// Rewraps up to `limit` DEKs that are not under the primary KEK, in one transaction. Each
    /// row's `kek_version` changes together with its `wrapped_dek`, so a subject is readable under
    /// its recorded version at every instant, and a crash (of anything) leaves a resumable state.
    public func rewrapBatch(limit: Int) async throws(StorageError) -> RewrapProgress {
        let keyring = self.keyring
        let primary = keyring.primaryKEK
        // A bulk write: requests' writes and audit entries queued meanwhile commit right after
        // this batch, not together with the next one.
        return try await write(bulk: true) { db in
            // Two index range searches (below and above the primary version) rather than
            // `kek_version != ?`, which no index serves: with it every batch rescanned the table
            // from the start, and a full rewrap was quadratic in the number of subjects.
            var rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT \(SubjectRow.selectColumns) FROM subject s WHERE s.kek_version < ? ORDER BY s.kek_version, s.id LIMIT ?
                    """, arguments: [primary.version, max(0, limit)])
            if rows.count < limit {
                rows += try Row.fetchAll(
                    db,
                    sql: """
                        SELECT \(SubjectRow.selectColumns) FROM subject s WHERE s.kek_version > ? ORDER BY s.kek_version, s.id LIMIT ?
                        """, arguments: [primary.version, max(0, limit - rows.count)])
            }
            for row in rows {
                var subject = try SubjectRow(row: row)
                let dek = try subject.dek(keyring: self.keyring, slab: self.dekSlab)
                let wrapped = try SubjectKeys.wrap(dek, sid: subject.sid, version: primary.version, kek: primary.key)
                // The row MAC binds kek_version (docs/CRYPTO.md §Authenticated columns). A row whose
                // MAC failed before keeps failing: its new MAC is computed only over a valid one.
                let valid = RowIntegrity.matches(subject.rowMAC, try subject.expectedMAC(keyring: keyring))
                subject.kekVersion = primary.version
                let mac = valid ? try subject.expectedMAC(keyring: keyring) : subject.rowMAC
                try db.executeCached(
                    "UPDATE subject SET wrapped_dek = ?, kek_version = ?, row_mac = ? WHERE id = ?",
                    [Data(wrapped), primary.version, Data(mac), subject.id])
            }
            let remaining =
                try Int.fetchOne(
                    db,
                    sql: """
                        SELECT (SELECT count(*) FROM subject WHERE kek_version < ?1) + (SELECT count(*) FROM subject WHERE kek_version > ?1)
                        """, arguments: [primary.version]) ?? 0
            return RewrapProgress(rewrapped: rows.count, remaining: remaining, primaryVersion: primary.version)
        }
    }
}
