import Foundation
internal import GRDB
import RegistryCore

/// Cheap reads behind the operational gauges of `/metrics` (RegistryServer's
/// OperationalGauges.swift): each is one indexed query, safe to run at every scrape.
extension SQLiteRegistryStore {
    /// Entries after the last signed checkpoint: the `unsignedTail` that `anonreg audit verify`
    /// reports (`AuditChain.Report`), read from the two tables' heads instead of walking the
    /// chain. The one source of `anonreg_audit_unsigned_tail_entries`.
    public func auditUnsignedTail() async throws(StorageError) -> Int {
        try await read { db in
            let last = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entry") ?? 0
            let signed = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_checkpoint") ?? 0
            return Int(max(0, last - signed))
        }
    }

    /// The time (`at`, RFC 3339 UTC) of the newest audit entry with this action and result.
    public func lastAuditTime(action: String, result: String) async throws(StorageError) -> String? {
        try await read { db in
            try String.fetchOne(
                db, sql: "SELECT at FROM audit_entry WHERE action = ? AND result = ? ORDER BY seq DESC LIMIT 1",
                arguments: [action, result])
        }
    }
}
