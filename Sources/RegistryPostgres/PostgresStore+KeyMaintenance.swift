import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats

/// KEK usage and the rewrap on PostgreSQL (docs/CRYPTO.md §Key lifecycle): the same intents as
/// `SQLiteRegistryStore+Rewrap.swift`.
///
/// An enrolment wraps its new DEK under the primary KEK it reads inside its transaction, and
/// holds `kekLockKey` shared until it commits; `kekUsageAfterPendingWrites` takes it exclusive,
/// so it counts after every enrolment that may still be wrapping under an older primary, on
/// any node: what `keys retire` must see.
extension PostgresStore {
    /// The bytes of "ANRGKEKS" as a big-endian signed 64-bit integer (0x414E52474B454B53).
    public static let kekLockKey: Int64 = 0x414E_5247_4B45_4B53

    public func kekUsage() async throws(StorageError) -> [Int: Int] {
        let logger = self.logger
        return try await read { connection in try await Self.kekUsage(connection, logger: logger) }
    }

    public func kekUsageAfterPendingWrites() async throws(StorageError) -> [Int: Int] {
        let logger = self.logger
        return try await write { connection in
            try await connection.send("SELECT pg_advisory_xact_lock(\(Self.kekLockKey))", logger: logger)
            return try await Self.kekUsage(connection, logger: logger)
        }
    }

    static func kekUsage(_ connection: PostgresConnection, logger: Logger) async throws -> [Int: Int] {
        var usage: [Int: Int] = [:]
        for try await (version, count) in try await connection.stream(
            "SELECT kek_version, count(*) FROM subject GROUP BY kek_version", logger: logger
        ).decode((Int32, Int64).self) {
            usage[Int(version)] = Int(count)
        }
        return usage
    }

    /// Rewraps up to `limit` DEKs that are not under the primary KEK, in one transaction, each
    /// row locked (`FOR UPDATE`): a node rewrapping beside another skips nothing and rewraps
    /// nothing twice, since a locked row is read again once free and no longer matches. Each
    /// row's `kek_version` changes with its `wrapped_dek` and MAC.
    public func rewrapBatch(limit: Int) async throws(StorageError) -> RewrapProgress {
        let logger = self.logger
        return try await write(bulk: true) { connection in
            // Held shared like an enrolment's, so `kekUsageAfterPendingWrites` counts after it.
            try await connection.send("SELECT pg_advisory_xact_lock_shared(\(Self.kekLockKey))", logger: logger)
            let keyring = self.keyring
            // The registry's primary, which may be newer than this node's own (KeyringPosition).
            let primary = try await self.registryPrimaryKEK(connection, keyring: keyring, logger: logger)
            var rows = try await connection.rows(
                """
                SELECT \(unescaped: PostgresSubjectRow.selectColumns) FROM subject s WHERE s.kek_version < \(Int32(primary.version))
                ORDER BY s.kek_version, s.id LIMIT \(Int64(max(0, limit))) FOR UPDATE
                """, logger: logger)
            if rows.count < limit {
                rows += try await connection.rows(
                    """
                    SELECT \(unescaped: PostgresSubjectRow.selectColumns) FROM subject s WHERE s.kek_version > \(Int32(primary.version))
                    ORDER BY s.kek_version, s.id LIMIT \(Int64(max(0, limit - rows.count))) FOR UPDATE
                    """, logger: logger)
            }
            for row in rows {
                var subject = try PostgresSubjectRow(row.makeRandomAccess())
                let dek = try subject.dek(keyring: keyring, slab: self.dekSlab)
                let wrapped = try SubjectKeys.wrap(dek, sid: subject.sid, version: primary.version, kek: primary.key)
                // The row MAC binds kek_version. A row whose MAC failed before keeps failing.
                let valid = RowIntegrity.matches(subject.rowMAC, try subject.expectedMAC(keyring: keyring))
                subject.kekVersion = primary.version
                let mac = valid ? try subject.expectedMAC(keyring: keyring) : subject.rowMAC
                try await connection.send(
                    """
                    UPDATE subject SET wrapped_dek = \(wrapped.bytea), kek_version = \(Int32(primary.version)), row_mac = \(mac.bytea)
                    WHERE id = \(subject.id)
                    """, logger: logger)
            }
            let remaining =
                try await connection.row(
                    "SELECT count(*) FROM subject WHERE kek_version <> \(Int32(primary.version))", logger: logger)?.decode(Int64.self) ?? 0
            return RewrapProgress(rewrapped: rows.count, remaining: Int(remaining), primaryVersion: primary.version)
        }
    }
}
