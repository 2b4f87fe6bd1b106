import Foundation
internal import GRDB
import RegistryCore
import RegistryFormats
import RegistryProtocol

extension SQLiteRegistryStore {
    /// Every byte string the subject behind `handle` has in the database: its sid, code index,
    /// wrapped DEK, row MAC and record chain head, sealed records, case-handle indexes, sealed
    /// handles and link MACs. The erasure tests look for these on disk after erasure.
    func storedTraces(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> [[UInt8]] {
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        return try await read { db in
            guard let subject = try self.subject(db, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            var traces: [[UInt8]] = [subject.sid, subject.wrappedDEK, subject.codeIndex, subject.rowMAC]
            if subject.records > 0 { traces.append(subject.recordsHead) }
            traces += try Data.fetchAll(db, sql: "SELECT sealed FROM record WHERE subject_id = ?", arguments: [subject.id]).map {
                Array($0)
            }
            for link in try Row.fetchAll(
                db, sql: "SELECT handle_index, sealed_handle, row_mac FROM case_link WHERE subject_id = ?", arguments: [subject.id])
            {
                traces.append(Array(link[0] as Data))
                traces.append(Array(link[1] as Data))
                traces.append(Array(link[2] as Data))
            }
            return traces
        }
    }

    /// Row counts of the registry tables: tests and fault runs compare them before and after
    /// bad input to show nothing changed.
    public func rowCounts() async throws(StorageError) -> [String: Int] {
        try await read { db in
            var counts: [String: Int] = [:]
            for table in ["subject", "case_link", "record", "counter", "audit_entry", "audit_checkpoint"] {
                counts[table] = try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0
            }
            return counts
        }
    }
}
