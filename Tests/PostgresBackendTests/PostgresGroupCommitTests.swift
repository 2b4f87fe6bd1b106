import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryPostgres
import Testing

/// Group commit on PostgreSQL (docs/STORAGE.md §PostgreSQL, "Group commit"): a node's writes
/// share transactions, a write that fails in a batch fails alone and leaves nothing, not even its
/// audit entry, and a batch run again after a deadlock keeps every write's audit entry.
// The limit catches a write that is never answered (for ever), not a slow one: in a full
// `make test` on two cores every test starts at once, and this suite's tests took up to
// 263 s on CI (stop 32) and more than 300 s on a busier machine.
@Suite(.timeLimit(.minutes(20)))
struct PostgresGroupCommitTests {
    typealias Nodes = PostgresNodes

    /// Writes one check-up on `handle` under an audit context of its own, as a request would.
    static func audited(_ action: String, _ body: @Sendable () async throws -> Void) async throws {
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic clinic-a", action: action))
        try await AuditRecorder.$current.withValue(recorder) { try await body() }
    }

    static func commitCheckup(
        _ node: PostgresStore, _ handle: CaseHandle, note: String, stamp: SubjectStamp
    ) async throws(StorageError) {
        let change = SubjectChange(
            append: [NewRecord(kind: .checkup, plaintext: Array(note.utf8))],
            columns: Nodes.columns(), summary: Array("after \(note)".utf8))
        try await node.commit(change, case: handle, clinic: Nodes.clinicA, ifUnchanged: stamp)
    }

    @Test func concurrentWritesShareCommitsAndAFailedOneLeavesNothing() async throws {
        let nodes = try PostgresNodes()
        let node = try await nodes.node()
        defer { Task { await node.close() } }
        var handles: [CaseHandle] = []
        for i in 0..<24 { handles.append(try await Nodes.enrol(node, consent: "consent \(i)").caseHandle) }
        let first = handles[0]
        // A stamp made stale by a check-up committed after it was read.
        let stale = try await node.openForChange(case: handles[0], clinic: Nodes.clinicA, history: false).stamp
        try await Nodes.addCheckup(node, handles[0], clinic: Nodes.clinicA, note: "first")
        let before = node.writeBatches

        // Another session holds the chain's lock for a second, so that the writes queue up.
        let holder = try nodes.cluster.session(
            "SELECT pg_advisory_lock(\(PostgresStore.auditLockKey)); SELECT pg_sleep(1); SELECT pg_advisory_unlock(\(PostgresStore.auditLockKey));"
        )
        defer { holder.wait() }
        try await Task.sleep(for: .milliseconds(300))
        let staleOutcome = try await withThrowingTaskGroup(of: String?.self) { group in
            for (i, handle) in handles.enumerated() {
                group.addTask { () async throws -> String? in
                    let stamp = try await node.openForChange(case: handle, clinic: Nodes.clinicA, history: false).stamp
                    try await Self.audited("checkup-\(i)") { try await Self.commitCheckup(node, handle, note: "n\(i)", stamp: stamp) }
                    return nil
                }
            }
            group.addTask {
                do {
                    try await Self.audited("checkup-stale") { try await Self.commitCheckup(node, first, note: "stale", stamp: stale) }
                    return "committed"
                } catch let error as StorageError {
                    return "\(error)"
                }
            }
            var outcome: String?
            for try await value in group where value != nil { outcome = value }
            return outcome
        }
        let after = node.writeBatches

        #expect(staleOutcome == "\(StorageError.subjectChanged)")
        // 25 writes in fewer transactions than writes (one per write without group commit).
        #expect(after.writes - before.writes == 25)
        #expect(after.commits - before.commits < 12, "batches: \(after.commits - before.commits)")
        for (i, handle) in handles.enumerated() {
            let notes = try await Nodes.notes(node, handle, clinic: Nodes.clinicA)
            #expect(notes == (i == 0 ? ["first", "n0"] : ["n\(i)"]))
        }
        // Every committed write's entry is in the chain once; the failed one's was rolled back
        // with its savepoint; the chain verifies.
        let actions = try await node.auditEntries(after: 0, limit: 10_000).map(\.action)
        for i in handles.indices { #expect(actions.filter { $0 == "checkup-\(i)" }.count == 1, "checkup-\(i)") }
        #expect(!actions.contains("checkup-stale"))
        #expect(try await node.verifyAudit().ok)
    }

    /// A batch that the server rolls back for a deadlock is run again whole. A write of it that
    /// had appended its request's entry before the deadlock must append it again: else the
    /// effect commits on the second run with no entry (an unaudited write, which a request's
    /// audit context would also keep the server from appending after the fact).
    @Test func aBatchRunAgainAfterADeadlockKeepsEveryAuditEntry() async throws {
        let nodes = try PostgresNodes()
        // The node's sessions look for deadlocks after 4 s of waiting, long enough for this test
        // to close the cycle; the cycle's own session never looks (60 s), so the batch is the one
        // the server rolls back.
        try nodes.sql("ALTER DATABASE \(nodes.cluster.database) SET deadlock_timeout = '4s'")
        let node = try await nodes.node()
        defer { Task { await node.close() } }
        let p = try await Nodes.enrol(node, consent: "p").caseHandle
        let q = try await Nodes.enrol(node, consent: "q").caseHandle
        let qID = try nodes.sql("SELECT max(id) FROM subject")
        let deadlocksBefore = Int(try nodes.sql("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")) ?? -1
        let pStamp = try await node.openForChange(case: p, clinic: Nodes.clinicA, history: false).stamp
        let qStamp = try await node.openForChange(case: q, clinic: Nodes.clinicA, history: false).stamp
        let gateKey = 0x7465_7374_6761_7465

        // `holder` holds the chain's lock, so that the first write waits alone in a batch and the
        // two check-ups queue behind it into the next one. `cycle` holds q's row, and asks for
        // the chain's lock once the gate opens.
        let holder = try nodes.cluster.session(
            "SET application_name = 'holder'; SELECT pg_advisory_lock(\(PostgresStore.auditLockKey)); SELECT pg_sleep(600);")
        let gate = try nodes.cluster.session("SET application_name = 'gate'; SELECT pg_advisory_lock(\(gateKey)); SELECT pg_sleep(600);")
        var sessions = [holder, gate]
        defer {
            // Killed, never waited for while blocked: `cycle` waits for the gate's lock.
            for session in sessions {
                session.signal(SIGKILL)
                session.wait()
            }
        }
        try await Self.waitUntil(nodes, "SELECT count(*) = 2 FROM pg_locks WHERE locktype = 'advisory' AND granted")
        let cycle = try nodes.cluster.session(
            """
            SET deadlock_timeout = '60s';
            BEGIN;
            SELECT 1 FROM subject WHERE id = \(qID) FOR UPDATE;
            SELECT pg_advisory_xact_lock(\(gateKey));
            SELECT pg_advisory_xact_lock(\(PostgresStore.auditLockKey));
            COMMIT;
            """)
        sessions.append(cycle)
        try await Self.waitUntil(nodes, "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        let first = Task {
            try await node.appendAudit(AuditEvent(actor: "system test", action: "first", result: "ok", subjectReference: nil))
        }
        try await Self.waitUntil(nodes, "SELECT count(*) = 2 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        // p queues before q, so that p appends its entry before q waits for q's row.
        let pWrite = Task { try await Self.audited("checkup-p") { try await Self.commitCheckup(node, p, note: "p1", stamp: pStamp) } }
        try await Task.sleep(for: .milliseconds(200))
        let qWrite = Task { try await Self.audited("checkup-q") { try await Self.commitCheckup(node, q, note: "q1", stamp: qStamp) } }
        try await Task.sleep(for: .milliseconds(200))
        try nodes.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder'")
        try await first.value
        // The batch of p and q holds the chain's lock and waits for q's row: close the cycle.
        try await Self.waitUntil(nodes, "SELECT count(*) >= 1 FROM pg_locks WHERE locktype <> 'advisory' AND NOT granted")
        try nodes.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'gate'")
        try await pWrite.value
        try await qWrite.value

        let deadlocks = Int(try nodes.sql("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")) ?? -1
        #expect(deadlocks > deadlocksBefore, "the scenario did not produce its deadlock")
        #expect(try await Nodes.notes(node, p, clinic: Nodes.clinicA) == ["p1"])
        #expect(try await Nodes.notes(node, q, clinic: Nodes.clinicA) == ["q1"])
        let actions = try await node.auditEntries(after: 0, limit: 10_000).map(\.action)
        #expect(actions.filter { $0 == "checkup-p" }.count == 1, "\(actions)")
        #expect(actions.filter { $0 == "checkup-q" }.count == 1, "\(actions)")
        #expect(try await node.verifyAudit().ok)
    }

    /// A write that fails after it inserted its audit entry (here, a trigger planted by a
    /// database administrator refuses the entry's subject link) is rolled back to its savepoint:
    /// its entry is gone, the writes around it in the same batch commit, and the chain verifies.
    /// Fails without the savepoint rollback (the whole batch then fails). The head cache's reset
    /// after a rollback is not reached here: every write appends last, and the cache moves
    /// only once an append is complete.
    @Test func aWriteRolledBackAfterItsAppendLeavesNoEntryAndTheChainWhole() async throws {
        let nodes = try PostgresNodes()
        let node = try await nodes.node()
        defer { Task { await node.close() } }
        var enrolled: [CaseHandle] = []
        for i in 0..<3 { enrolled.append(try await Nodes.enrol(node, consent: "c\(i)").caseHandle) }
        let handles = enrolled
        let doomed = handles[1]
        let stamps = try await withThrowingTaskGroup(of: (Int, SubjectStamp).self) { group in
            for (i, handle) in handles.enumerated() {
                group.addTask { (i, try await node.openForChange(case: handle, clinic: Nodes.clinicA, history: false).stamp) }
            }
            return try await group.reduce(into: [Int: SubjectStamp]()) { $0[$1.0] = $1.1 }
        }
        // The doomed subject's audit reference, from an audited write of its own.
        try await Self.audited("probe") { try await Self.commitCheckup(node, doomed, note: "probe", stamp: stamps[1]!) }
        let reference = try nodes.sql("SELECT encode(subject_ref, 'hex') FROM audit_subject ORDER BY seq DESC LIMIT 1")
        let fresh = try await node.openForChange(case: doomed, clinic: Nodes.clinicA, history: false).stamp
        try nodes.sql(
            """
            CREATE FUNCTION refuse_link() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
            CREATE TRIGGER refuse_link BEFORE INSERT ON audit_subject FOR EACH ROW
            WHEN (NEW.subject_ref = decode('\(reference)', 'hex')) EXECUTE FUNCTION refuse_link();
            """)
        // The three writes queue behind a held chain lock, so they run in one batch, the doomed
        // one in the middle.
        let holder = try nodes.cluster.session(
            "SELECT pg_advisory_lock(\(PostgresStore.auditLockKey)); SELECT pg_sleep(1); SELECT pg_advisory_unlock(\(PostgresStore.auditLockKey));"
        )
        defer { holder.wait() }
        try await Self.waitUntil(nodes, "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND granted")
        // A plain entry takes the first batch (which waits for the lock), so that the three
        // check-ups queue behind it into the next one.
        let before = node.writeBatches
        let blocker = Task {
            try await node.appendAudit(AuditEvent(actor: "system test", action: "blocker", result: "ok", subjectReference: nil))
        }
        try await Task.sleep(for: .milliseconds(100))
        let first = Task {
            try await Self.audited("checkup-0") { try await Self.commitCheckup(node, handles[0], note: "n0", stamp: stamps[0]!) }
        }
        try await Task.sleep(for: .milliseconds(100))
        let second = Task { () -> String in
            do {
                try await Self.audited("checkup-1") { try await Self.commitCheckup(node, doomed, note: "n1", stamp: fresh) }
                return "committed"
            } catch {
                return "\(error)"
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        let third = Task {
            try await Self.audited("checkup-2") { try await Self.commitCheckup(node, handles[2], note: "n2", stamp: stamps[2]!) }
        }
        try await blocker.value
        try await first.value
        try await third.value
        let outcome = await second.value
        let after = node.writeBatches

        #expect(outcome.contains("refused by the test") || outcome.contains("P0001"), "\(outcome)")
        #expect(after.commits - before.commits == 2, "the three check-ups were meant to share one batch")
        #expect(try await Nodes.notes(node, doomed, clinic: Nodes.clinicA) == ["probe"])
        #expect(try await Nodes.notes(node, handles[2], clinic: Nodes.clinicA) == ["n2"])
        let actions = try await node.auditEntries(after: 0, limit: 10_000).map(\.action)
        #expect(!actions.contains("checkup-1"), "\(actions)")
        #expect(actions.filter { $0 == "checkup-0" || $0 == "checkup-2" }.count == 2, "\(actions)")
        let report = try await node.verifyAudit()
        #expect(report.ok, "\(report)")
    }

    /// Every wait of a write is bounded (issue 17: "503, not a hang"): while another session
    /// holds the audit chain's lock for two minutes, the batch waiting for it gives up after its
    /// lock_timeout, and the writes queued behind it after `queueWait` at most; each is answered
    /// `unavailable` and leaves nothing. Fails when the batch waits for the lock without a bound
    /// (the writes then stay unanswered until the lock is free).
    @Test func writesBehindAHeldChainLockAreAnswered503NotHung() async throws {
        let nodes = try PostgresNodes()
        let node = try await nodes.node()
        defer { Task { await node.close() } }
        let receipt = try await Nodes.enrol(node)
        let entries = try nodes.sql("SELECT count(*) FROM audit_entry")
        let holder = try nodes.cluster.session(
            "SET application_name = 'chain-holder'; SELECT pg_advisory_lock(\(PostgresStore.auditLockKey)); SELECT pg_sleep(180);")
        defer {
            holder.signal(SIGKILL)
            holder.wait()
        }
        try await Self.waitUntil(nodes, "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND granted")
        final class Outcomes: @unchecked Sendable {
            let lock = NSLock()
            var values: [String] = []
        }
        let outcomes = Outcomes()
        let started = ContinuousClock.now
        for i in 0..<6 {
            Task {
                let text: String
                do {
                    try await Self.audited("blocked-\(i)") {
                        try await node.appendAudit(
                            AuditEvent(actor: "system test", action: "blocked-\(i)", result: "ok", subjectReference: nil))
                    }
                    text = "committed"
                } catch let error as StorageError {
                    if case .unavailable = error { text = "unavailable" } else { text = "\(error)" }
                } catch {
                    text = "\(error)"
                }
                outcomes.lock.withLock { outcomes.values.append(text) }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        // The first batch gives up after its lock_timeout (30 s), the writes queued behind it
        // after `queueWait` (30 s) at most.
        while ContinuousClock.now - started < .seconds(80), outcomes.lock.withLock({ outcomes.values.count }) < 6 {
            try await Task.sleep(for: .milliseconds(100))
        }
        let answered = outcomes.lock.withLock { outcomes.values }
        #expect(answered.count == 6, "answered \(answered.count) of 6 after \(ContinuousClock.now - started): \(answered)")
        #expect(answered.allSatisfy { $0 == "unavailable" }, "\(answered)")
        #expect(try nodes.sql("SELECT count(*) FROM audit_entry") == entries)
        // Once the lock is free, the node writes again.
        try nodes.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chain-holder'")
        try await Nodes.addCheckup(node, receipt.caseHandle, clinic: Nodes.clinicA, note: "after", retryingUnavailable: false)
        #expect(try await Nodes.notes(node, receipt.caseHandle, clinic: Nodes.clinicA) == ["after"])
    }

    /// A write that waits too long for a row another session holds (lock_timeout) fails alone,
    /// 503, rolled back to its savepoint; the write after it in the same batch commits. Fails
    /// when a timeout inside one write fails its whole batch.
    @Test func aLockTimeoutInOneWriteFailsThatWriteAlone() async throws {
        let nodes = try PostgresNodes()
        let node = try await nodes.node()
        defer { Task { await node.close() } }
        let p = try await Nodes.enrol(node, consent: "p").caseHandle
        let q = try await Nodes.enrol(node, consent: "q").caseHandle
        let qID = try nodes.sql("SELECT max(id) FROM subject")
        let pStamp = try await node.openForChange(case: p, clinic: Nodes.clinicA, history: false).stamp
        let qStamp = try await node.openForChange(case: q, clinic: Nodes.clinicA, history: false).stamp
        let rowHolder = try nodes.cluster.session(
            "SET application_name = 'row-holder'; BEGIN; SELECT 1 FROM subject WHERE id = \(qID) FOR UPDATE; SELECT pg_sleep(180);")
        // Holds the chain's lock until q and p are both queued (its server process is then
        // terminated), whatever the machine's load does to the test's sleeps.
        let chainHolder = try nodes.cluster.session(
            "SET application_name = 'chain-holder'; SELECT pg_advisory_lock(\(PostgresStore.auditLockKey)); SELECT pg_sleep(120);")
        defer {
            rowHolder.signal(SIGKILL)
            rowHolder.wait()
            chainHolder.signal(SIGKILL)
            chainHolder.wait()
        }
        try await Self.waitUntil(nodes, "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND granted")
        // A plain entry takes the first batch, which waits for the chain's lock; q, then p,
        // queue into the next one.
        let blocker = Task {
            try await node.appendAudit(AuditEvent(actor: "system test", action: "blocker", result: "ok", subjectReference: nil))
        }
        try await Self.waitUntil(nodes, "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        let queuedBefore = node.queuedWrites
        let qWrite = Task { () -> String in
            do {
                try await Self.audited("checkup-q") { try await Self.commitCheckup(node, q, note: "q1", stamp: qStamp) }
                return "committed"
            } catch let error as StorageError {
                // Its own wait for q's row ran out, inside its batch: the lock timeout (55P03) or
                // the statement timeout (57014), both 30 s, whichever the server fires first; not
                // a queue wait that ran out before it ran.
                if case .unavailable(let reason) = error, reason.hasSuffix("(SQLSTATE 55P03)") || reason.hasSuffix("(SQLSTATE 57014)") {
                    return "unavailable"
                }
                return "\(error)"
            } catch {
                return "\(error)"
            }
        }
        for _ in 0..<600 where node.queuedWrites < queuedBefore + 1 { try await Task.sleep(for: .milliseconds(50)) }
        let pWrite = Task { try await Self.audited("checkup-p") { try await Self.commitCheckup(node, p, note: "p1", stamp: pStamp) } }
        for _ in 0..<600 where node.queuedWrites < queuedBefore + 2 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(node.queuedWrites == queuedBefore + 2, "q and p are not both queued")
        try nodes.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'chain-holder';")
        // The blocker only held the batch before q and p: on a starved machine its own wait for
        // the chain's lock may have run out (503), which changes nothing below.
        do { try await blocker.value } catch let error as StorageError {
            guard case .unavailable = error else { throw error }
        }
        let qOutcome = await qWrite.value
        #expect(qOutcome == "unavailable", "\(qOutcome)")
        do { try await pWrite.value } catch { Issue.record("the write after the timed-out one failed with it: \(error)") }
        #expect(try await Nodes.notes(node, p, clinic: Nodes.clinicA) == ["p1"])
        let actions = try await node.auditEntries(after: 0, limit: 10_000).map(\.action)
        #expect(!actions.contains("checkup-q") && actions.contains("checkup-p"), "\(actions)")
        #expect(try await node.verifyAudit().ok)
    }

    /// Polls `sql` until it answers `t` (at most 30 s).
    static func waitUntil(_ nodes: PostgresNodes, _ sql: String) async throws {
        for _ in 0..<600 {
            if try nodes.sql(sql) == "t" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw StorageError.database(reason: "timed out waiting for: \(sql)")
    }
}
