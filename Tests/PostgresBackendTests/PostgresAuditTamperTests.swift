import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import Testing

/// A database administrator against the audit chain's upkeep on PostgreSQL (docs/STORAGE.md
/// §Audit on PostgreSQL): the nodes read checkpoints, prune and sign from the database, so none
/// of that may take the database's word for what anonreg wrote.
@Suite(.timeLimit(.minutes(10)))
struct PostgresAuditTamperTests {
    /// Some audited check-ups on one subject, through `node`.
    static func audited(_ node: PostgresStore, _ handle: CaseHandle, count: Int) async throws {
        for n in 0..<count {
            let recorder = AuditRecorder(.init(actor: "clinic clinic-a", action: "checkup"))
            try await AuditRecorder.$current.withValue(recorder) {
                try await PostgresNodes.addCheckup(node, handle, clinic: PostgresNodes.clinicA, note: "n\(n)")
            }
        }
    }

    static func anchorSeq(_ nodes: PostgresNodes) throws -> Int64? {
        try AuditAnchor.read(directory: nodes.keysDirectory.sub("keys"))?.seq
    }

    /// A forged checkpoint far ahead (any seq, a zero signature) never becomes a node's anchor,
    /// so it can neither stop the nodes from starting nor freeze the anchor. Fails when the
    /// anchor takes the database's newest checkpoint unchecked.
    @Test func aForgedCheckpointNeverBecomesTheAnchor() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node(checkpointEvery: 5)
        defer { Task { await a.close() } }
        let receipt = try await PostgresNodes.enrol(a)
        try await Self.audited(a, receipt.caseHandle, count: 6)
        _ = try await a.checkpointAudit()
        let genuine = try #require(try Self.anchorSeq(nodes))
        try nodes.sql(
            """
            INSERT INTO audit_checkpoint (seq, hash, at, signature, format, previous, interval)
            VALUES (4611686018427387904, decode(repeat('00', 32), 'hex'), '2026-12-07T00:00:00Z', decode(repeat('00', 64), 'hex'), 2, \(genuine), 5);
            """)
        _ = await a.retryPendingErasureCleanup()
        #expect(try Self.anchorSeq(nodes) == genuine)
        // A restart checks the anchor against the chain, and starts.
        let again = try await nodes.node(checkpointEvery: 5)
        try await again.checkAuditAnchor()
        await again.close()
    }

    /// Entries rewritten since the last checkpoint are not signed by the next one. Fails when
    /// the checkpoint signs whatever the tail holds.
    @Test func aCheckpointDoesNotSignARewrittenTail() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node(checkpointEvery: 1000)
        defer { Task { await a.close() } }
        let receipt = try await PostgresNodes.enrol(a)
        try await Self.audited(a, receipt.caseHandle, count: 3)
        _ = try await a.checkpointAudit()
        try await Self.audited(a, receipt.caseHandle, count: 3)
        let checkpoints = try nodes.sql("SELECT count(*) FROM audit_checkpoint;")
        try nodes.sql("UPDATE audit_entry SET result = 'forged' WHERE seq = (SELECT max(seq) - 1 FROM audit_entry);")
        await #expect(throws: StorageError.self) { _ = try await a.checkpointAudit() }
        #expect(try nodes.sql("SELECT count(*) FROM audit_checkpoint;") == checkpoints)
    }

    /// Two entries swapped in place (each keeping the other's number and hashes), and the tail
    /// cut off with its checkpoints: `audit verify` catches both, and a node refuses to start on
    /// the cut chain, whose end is now before its anchor. Fails when verification or the start
    /// trusts the chain's own end.
    @Test func aSwapAndACutTailAreCaught() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node(checkpointEvery: 5)
        defer { Task { await a.close() } }
        let receipt = try await PostgresNodes.enrol(a)
        try await Self.audited(a, receipt.caseHandle, count: 12)
        _ = try await a.checkpointAudit()
        #expect(try await a.verifyAudit().ok)
        let anchor = try #require(try Self.anchorSeq(nodes))
        #expect(anchor >= 12)

        let swap = """
            UPDATE audit_entry e SET at = o.at, actor = o.actor, action = o.action, result = o.result, subject_commit = o.subject_commit
            FROM audit_entry o WHERE (e.seq, o.seq) IN ((3, 4), (4, 3));
            """
        try nodes.sql("CREATE TABLE saved AS SELECT * FROM audit_entry WHERE seq IN (3, 4);")
        try nodes.sql("UPDATE audit_entry SET action = 'a-' || seq WHERE seq IN (3, 4);")
        try nodes.sql(swap)
        #expect(try await a.verifyAudit().ok == false, "a swap of two entries")
        try nodes.sql(
            "DELETE FROM audit_entry WHERE seq IN (3, 4); INSERT INTO audit_entry SELECT * FROM saved; DROP TABLE saved;")
        #expect(try await a.verifyAudit().ok)

        // The tail after entry 8 is cut, with every checkpoint after it: what is left is a
        // consistent chain, signed up to entry 5, that merely ends early.
        try nodes.sql(
            "DELETE FROM audit_subject WHERE seq > 8; DELETE FROM audit_checkpoint WHERE seq > 8; DELETE FROM audit_entry WHERE seq > 8;")
        #expect(try await a.verifyAudit().ok == false, "a chain cut before its anchor")
        await #expect(throws: StorageError.self, "a start on a cut chain") { try await a.checkAuditAnchor() }
    }

    /// A checkpoint whose time was backdated (so that a prune would take the whole history) is
    /// not a prune's anchor: nothing is deleted. Fails when the prune trusts `at`.
    @Test func aBackdatedCheckpointPrunesNothing() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node(checkpointEvery: 4)
        defer { Task { await a.close() } }
        let receipt = try await PostgresNodes.enrol(a)
        try await Self.audited(a, receipt.caseHandle, count: 10)
        let before = try nodes.sql("SELECT count(*) FROM audit_entry;")
        try nodes.sql("UPDATE audit_checkpoint SET at = '2000-01-01T00:00:00Z' WHERE seq = (SELECT max(seq) FROM audit_checkpoint);")
        await #expect(throws: StorageError.self) { _ = try await a.pruneAudit(olderThan: "2001-01-01T00:00:00Z") }
        #expect(try nodes.sql("SELECT count(*) FROM audit_entry;") == before)
    }

    /// A `job_run` date in the future does not postpone the sweep. Fails when any recorded date
    /// later than a day ago counts as done.
    @Test func aFutureJobDateDoesNotPostponeTheSweep() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        defer { Task { await a.close() } }
        try nodes.sql("INSERT INTO job_run (job, finished_at) VALUES ('sweep', 'infinity');")
        #expect(try await a.runIfDue(.sweep, every: .seconds(86400)) { "ran" } == "ran")
    }
}
