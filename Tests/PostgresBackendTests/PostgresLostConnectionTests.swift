import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryPostgres
import Testing

/// A connection the server closes in the middle of a write (docs/STORAGE.md §PostgreSQL,
/// "Outages"): the write fails as `unavailable` at once and the store goes on writing. PostgresNIO
/// 1.33 never answers a statement written after the server closed the connection, so a ROLLBACK
/// sent there would hang the write, and with it the daemon's shutdown.
// The limit catches a write that is never answered (for ever), not a slow one: in a full
// `make test` on two cores every test starts at once, and this suite's tests took up to
// 263 s on CI (stop 32) and more than 300 s on a busier machine.
@Suite(.timeLimit(.minutes(20)))
struct PostgresLostConnectionTests {
    /// Each statement is raced against its connection's close (ConnectionCloseWatch): without
    /// it the write's ROLLBACK, or its batch's next statement, could be dropped by the driver
    /// and the write, with every write queued behind its batch, would never be answered.
    @Test
    func aWriteWhoseConnectionIsKilledMidwayFailsAtOnce() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        defer { Task { await a.close() } }
        // Another session holds the audit chain's lock, so the write waits inside its body.
        let holder = try nodes.cluster.session("SELECT pg_advisory_lock(\(PostgresStore.auditLockKey)); SELECT pg_sleep(60);")
        defer {
            holder.signal(SIGKILL)
            holder.wait()
        }
        try await Task.sleep(for: .seconds(1))
        let write = Task {
            try await a.appendAudit(AuditEvent(actor: "system test", action: "probe", result: "ok", subjectReference: nil))
        }
        // The write's server process, waiting for the lock, is terminated.
        var terminated = ""
        for _ in 0..<100 where terminated != "t" {
            try await Task.sleep(for: .milliseconds(100))
            terminated = try nodes.sql(
                """
                SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
                WHERE application_name = 'anonregd' AND wait_event_type = 'Lock';
                """)
        }
        #expect(terminated == "t")
        let started = ContinuousClock.now
        // Waited for without awaiting it: a hung write must fail the test, not hang it.
        final class Outcome: @unchecked Sendable {
            let lock = NSLock()
            var value: String?
        }
        let result = Outcome()
        Task {
            let text: String
            do {
                try await write.value
                text = "succeeded"
            } catch let error as StorageError {
                if case .unavailable = error { text = "unavailable" } else { text = "\(error)" }
            } catch {
                text = "\(error)"
            }
            result.lock.withLock { result.value = text }
        }
        var outcome = "hung"
        // A hang is for ever; 60 s, not less: on a loaded machine the test's own tasks can wait
        // many seconds for a thread of Swift's cooperative pool (docs/STORAGE.md §Tests).
        while ContinuousClock.now - started < .seconds(60) {
            if let value = result.lock.withLock({ result.value }) {
                outcome = value
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(outcome == "unavailable", "after \(ContinuousClock.now - started)")
        // The store writes again once the lock is free (the holder's server process ended).
        try nodes.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid();")
        try await a.appendAudit(AuditEvent(actor: "system test", action: "probe", result: "again", subjectReference: nil))
    }
}
