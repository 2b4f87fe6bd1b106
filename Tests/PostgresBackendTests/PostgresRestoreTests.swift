import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryFormats
import RegistryKeyring
import RegistryPostgres
import Testing

/// A PostgreSQL registry restored with PostgreSQL's tools (docs/OPERATIONS.md §PostgreSQL and
/// several nodes, "Restoring"): every node refuses the restored, shorter chain until the restore
/// is recorded, signed, in the chain; then every node starts. A database administrator can
/// neither forge that record nor replay an older one.
@Suite(.timeLimit(.minutes(10)))
struct PostgresRestoreTests {
    static func refused(_ node: PostgresStore) async -> Bool {
        do {
            try await node.checkAuditAnchor()
            return false
        } catch {
            return true
        }
    }

    @Test func aRestoreIsRefusedUntilRecordedThenEveryNodeStarts() async throws {
        let nodes = try PostgresNodes()
        let before = try await nodes.node(checkpointEvery: 5)
        let receipt = try await PostgresNodes.enrol(before)
        let doomed = try await PostgresNodes.enrol(before, consent: "doomed")
        try await PostgresAuditTamperTests.audited(before, receipt.caseHandle, count: 3)
        _ = try await before.checkpointAudit()
        let dump = try nodes.cluster.dump()
        // After the dump: more entries and checkpoints, which every node's anchor records.
        try await PostgresAuditTamperTests.audited(before, receipt.caseHandle, count: 12)
        try await before.erase(code: doomed.code, counters: [])
        _ = try await before.checkpointAudit()
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        defer { withExtendedLifetime(hostB) {} }
        let anchorBefore = try #require(try PostgresAuditTamperTests.anchorSeq(nodes))
        await before.close()

        try nodes.cluster.restore(dump)
        let a = try await nodes.node(checkpointEvery: 5)
        #expect(await Self.refused(a), "a chain cut short by a restore must be refused until it is recorded")

        // A database administrator records a "restore" without the audit key: refused still.
        let head = try nodes.sql("SELECT max(seq) FROM audit_entry")
        try nodes.sql(
            """
            INSERT INTO audit_entry (seq, at, actor, action, result, subject_commit, prev_hash, hash)
            VALUES (3000000001, '2026-12-07T00:00:00Z', 'admin uid 0 record-restore', '\(AuditChain.restoreAction)',
              '\(AuditChain.restoreResult(createdAt: "x", ended: Int64(head) ?? 0, head: [0], reErased: 0, continuesAfter: 3_000_000_000))',
              NULL, decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex'));
            INSERT INTO audit_checkpoint (seq, hash, at, signature, format, previous, interval)
            VALUES (3000000001, decode(repeat('11', 32), 'hex'), '2026-12-07T00:00:00Z', decode(repeat('00', 64), 'hex'), 2, 0, 5);
            """)
        #expect(await Self.refused(a), "a restore record without a genuine signature must not move the anchor")
        try nodes.sql("DELETE FROM audit_checkpoint WHERE seq = 3000000001; DELETE FROM audit_entry WHERE seq = 3000000001;")

        // A restored chain that does not verify as it stands is not signed on top of, and a
        // checkpoint row planted where the restore's will go is not taken for it.
        try nodes.sql("UPDATE audit_entry SET result = 'rewritten' WHERE seq = 3;")
        await #expect(throws: StorageError.self) { _ = try await a.recordDatabaseRestore(actor: "admin uid 0 record-restore") }
        try nodes.cluster.restore(dump)
        // The restore's number follows the clock (Unix seconds × 10⁶, plus one): rows are
        // planted at every number it can take in the next minute.
        let now = Int64(Date().timeIntervalSince1970)
        try nodes.sql(
            """
            INSERT INTO audit_checkpoint (seq, hash, at, signature, format, previous, interval)
            SELECT s * 1000000 + 1, decode(repeat('11', 32), 'hex'), '2026-12-07T00:00:00Z',
                   decode(repeat('00', 64), 'hex'), 2, 0, 5
            FROM generate_series(\(now - 1)::bigint, \(now + 60)::bigint) AS s ON CONFLICT DO NOTHING;
            """)
        await #expect(throws: StorageError.self) { _ = try await a.recordDatabaseRestore(actor: "admin uid 0 record-restore") }
        #expect(try nodes.sql("SELECT count(*) FROM audit_entry WHERE action = '\(AuditChain.restoreAction)'") == "0")
        try nodes.sql("DELETE FROM audit_checkpoint WHERE signature = decode(repeat('00', 64), 'hex');")

        let checkpoint = try await a.recordDatabaseRestore(actor: "admin uid 0 record-restore")
        #expect(checkpoint.seq > anchorBefore)
        // The erasure made after the dump is put back and counted in the signed entry.
        let result = try nodes.sql("SELECT result FROM audit_entry WHERE seq = \(checkpoint.seq)")
        #expect(result.contains("1 subject(s) erased again"), "\(result)")
        await #expect(throws: StorageError.self) { _ = try await a.subject(code: doomed.code) }
        try await a.checkAuditAnchor()
        // The other node, whose anchor is as far ahead as the first one's was, starts too.
        let b = try await nodes.node(checkpointEvery: 5, keys: keysB)
        try await b.checkAuditAnchor()
        try await PostgresAuditTamperTests.audited(b, receipt.caseHandle, count: 2)
        let report = try await a.verifyAudit()
        #expect(report.ok, "\(report)")
        #expect(report.restores == [checkpoint.seq])

        // A copy taken right after the restore was recorded, put back once the nodes' anchors
        // moved past it: its restore record continues before their anchors, so it is refused.
        let replay = try nodes.cluster.dump()
        try await PostgresAuditTamperTests.audited(a, receipt.caseHandle, count: 6)
        _ = try await a.checkpointAudit()
        await a.close()
        await b.close()
        try nodes.cluster.restore(replay)
        let after = try await nodes.node(checkpointEvery: 5)
        #expect(await Self.refused(after), "an older restore record must not let an older copy in")
        await after.close()
    }

    /// Two restores recorded by different nodes, the second on a node whose anchor predates the
    /// first restore (it was down since): their numbers must not meet, or exported copies would
    /// hold two different entries with one number. Fails when the numbering follows only the
    /// recording node's anchor (both restores then continue after 10⁹).
    @Test func restoresRecordedOnNodesWithStaleAnchorsNeverShareNumbers() async throws {
        let nodes = try PostgresNodes()
        let first = try await nodes.node(checkpointEvery: 5)
        let receipt = try await PostgresNodes.enrol(first)
        try await PostgresAuditTamperTests.audited(first, receipt.caseHandle, count: 6)
        _ = try await first.checkpointAudit()
        // Node B's own copy of the keys: its anchor stays where it is now.
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        defer { withExtendedLifetime(hostB) {} }
        let dump = try nodes.cluster.dump()
        try await PostgresAuditTamperTests.audited(first, receipt.caseHandle, count: 6)
        _ = try await first.checkpointAudit()
        await first.close()

        try nodes.cluster.restore(dump)
        let a = try await nodes.node(checkpointEvery: 5)
        let one = try await a.recordDatabaseRestore(actor: "admin uid 0 record-restore")
        try await PostgresAuditTamperTests.audited(a, receipt.caseHandle, count: 3)
        await a.close()

        try await Task.sleep(for: .milliseconds(1100))
        try nodes.cluster.restore(dump)
        let b = try await nodes.node(checkpointEvery: 5, keys: keysB)
        let two = try await b.recordDatabaseRestore(actor: "admin uid 0 record-restore")
        await b.close()
        #expect(two.seq > one.seq + 3, "restore \(two.seq) reuses the numbers after restore \(one.seq)")
        // Both stay below 2⁵³, so that JSON readers that use doubles read them exactly.
        #expect(two.seq < 1 << 53)
    }
}
