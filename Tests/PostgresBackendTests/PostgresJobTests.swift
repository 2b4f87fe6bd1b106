import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryPostgres
import Testing

/// Single-runner jobs on PostgreSQL (docs/STORAGE.md §Single-runner jobs).
@Suite(.timeLimit(.minutes(10)))
struct PostgresJobTests {
    /// Two nodes ask for the daily sweep at once: one runs it; once it is done, neither runs it
    /// again that day. A job asked for with interval zero runs whenever no other node runs it.
    @Test func aJobRunsOnOneNodeAtATimeAndOncePerInterval() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        let b = try await nodes.node()
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }
        let day = Duration.seconds(86400)
        async let first = a.runIfDue(.sweep, every: day) { () async throws -> String in
            try await Task.sleep(for: .milliseconds(500))
            return "a"
        }
        async let second = b.runIfDue(.sweep, every: day) { () async throws -> String in
            try await Task.sleep(for: .milliseconds(500))
            return "b"
        }
        let ran = [try await first, try await second].compactMap { $0 }
        #expect(ran.count == 1, "\(ran)")
        #expect(try await a.runIfDue(.sweep, every: day) { "again" } == nil)
        #expect(try await b.runIfDue(.sweep, every: day) { "again" } == nil)
        #expect(try nodes.sql("SELECT job FROM job_run;") == "sweep")
        // Due again once the interval has passed.
        #expect(try await b.runIfDue(.sweep, every: .milliseconds(1)) { "later" } == "later")
        // Interval zero: not due only while another node runs it.
        #expect(try await a.runIfDue(.auditCheckpoint, every: .zero) { 1 } == 1)
        #expect(try await b.runIfDue(.auditCheckpoint, every: .zero) { 2 } == 2)
    }

    /// The node that runs the sweep is SIGKILLed in the middle of it: the other node cannot take
    /// the job while it runs, and takes it over as soon as the killed node's session is gone.
    /// Fails if the job's lock outlived its holder, or if the killed run were recorded as done.
    @Test func aJobWhoseRunnerIsKilledIsTakenOverAtOnce() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        defer { Task { await a.close() } }
        let out = nodes.keysDirectory.sub("job.out")
        let cluster = nodes.cluster
        let holder = try Spawned.start(
            Binaries.path("anonreg-store-crash-helper"),
            [
                "postgres-job", cluster.socketDirectory, "\(cluster.port)", cluster.database, cluster.user, cluster.passwordFile,
                nodes.keysDirectory.sub("keys"),
            ],
            stdout: out, stderr: nodes.keysDirectory.sub("job.err"))
        var running = false
        for _ in 0..<600 where !running {
            running = ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("running")
            if !running { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(running, "\((try? String(contentsOfFile: nodes.keysDirectory.sub("job.err"), encoding: .utf8)) ?? "")")
        #expect(try await a.runIfDue(.sweep, every: .seconds(86400)) { "taken" } == nil, "the job ran beside its holder")

        holder.signal(SIGKILL)
        #expect(holder.wait() == 128 + SIGKILL)
        let killedAt = ContinuousClock.now
        var taken: String?
        while taken == nil, ContinuousClock.now - killedAt < .seconds(60) {
            taken = try await a.runIfDue(.sweep, every: .seconds(86400)) { "taken" }
            if taken == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(taken == "taken")
        print("job taken over \(ContinuousClock.now - killedAt) after the holder was killed")
    }
}
