import AnonregTestSupport
import Foundation
import Testing

/// Two anonregd on one PostgreSQL registry (issue 17; docs/OPERATIONS.md §Several nodes): each
/// with its own state directory, socket and clinics table, the same keyring (copied, as to
/// another host), and `[storage] backend = "postgresql"` naming one throwaway cluster.
@Suite(.timeLimit(.minutes(10)))
struct PostgresDaemonsTests {
    /// A daemon of `anonreg init`'s trial layout, switched to PostgreSQL; with `keysFrom`, its
    /// keys directory is replaced by a copy of that daemon's (same owner and modes).
    static func node(_ cluster: ThrowawayPostgres, keysFrom other: DaemonHarness? = nil, extra: String = "") throws -> DaemonHarness {
        let d = try DaemonHarness { config in
            config + """

                [storage]
                backend = "postgresql"

                [postgres]
                socket_dir = "\(cluster.socketDirectory)"
                port = \(cluster.port)
                database = "\(cluster.database)"
                user = "\(cluster.user)"
                password_file = "\(cluster.passwordFile)"
                connect_timeout_seconds = 120
                \(extra)
                """
        }
        if let other {
            let keys = d.stateDir + "/keys"
            try FileManager.default.removeItem(atPath: keys)
            let copy = try Binaries.runExecutable("/bin/cp", ["-a", other.stateDir + "/keys", keys])
            guard copy.status == 0 else { throw DaemonHarness.HarnessError.requestFailed("cp: \(copy.stderr)") }
            // The copy starts with the other node's ledger; a node's ledger is its own.
            try? FileManager.default.removeItem(atPath: keys + "/erasure-ledger")
            try? FileManager.default.removeItem(atPath: keys + "/audit-anchor")
        }
        return d
    }

    static let checkup =
        "{\"on\":\"2026-03-01\",\"outcome\":\"remission\",\"substances\":[],\"treatment\":[\"methadone\"],\"note\":\"NOTE\"}"

    @Test func aCaseEnrolledOnOneNodeIsFollowedAndErasedThroughTheOther() throws {
        let cluster = try ThrowawayPostgres()
        let a = try Self.node(cluster)
        try a.start()
        defer { a.stop() }
        let b = try Self.node(cluster, keysFrom: a)
        try b.start()
        defer { b.stop() }
        let enrol = try a.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        #expect(enrol.status == 201, "\(enrol.body)")
        // The subject is in PostgreSQL, not in the SQLite file `anonreg init` made.
        #expect(try cluster.psql("SELECT count(*) FROM subject;", database: cluster.database) == "1")
        #expect(
            try Binaries.runExecutable("/usr/bin/sqlite3", [a.stateDir + "/registry.sqlite", "SELECT count(*) FROM subject"]).stdout
                == "0\n")
        let handleA = try #require(enrol.string("case"))
        let code = try #require(enrol.string("code"))

        // Node B's clinic links by code, and both record a check-up.
        let link = try b.request("POST", "/v1/cases", body: "{\"code\":\"\(code)\"}")
        #expect(link.status == 201, "\(link.body)")
        let handleB = try #require(link.string("case"))
        #expect(
            try b.request("POST", "/v1/cases/\(handleB)/checkups", body: Self.checkup.replacingOccurrences(of: "NOTE", with: "on b"))
                .status == 201)
        let second = Self.checkup.replacingOccurrences(of: "2026-03-01", with: "2026-04-01").replacingOccurrences(of: "NOTE", with: "on a")
        #expect(try a.request("POST", "/v1/cases/\(handleA)/checkups", body: second).status == 201)

        // Each node sees both check-ups, through either clinic's case.
        for (node, handle) in [(a, handleA), (b, handleB), (b, handleA), (a, handleB)] {
            let history = try node.request("GET", "/v1/cases/\(handle)/checkups")
            #expect(history.status == 200)
            #expect(history.body.contains("on a") && history.body.contains("on b"), "\(history.body)")
            #expect(try node.request("GET", "/v1/cases/\(handle)").status == 200)
        }
        // Both nodes' entries are one chain that verifies.
        let verify = try b.request("GET", "/v1/admin/audit/verify")
        #expect(verify.status == 200 && verify.body.contains("\"ok\":true"), "\(verify.body)")

        // Withdrawal through B is final on A at once.
        #expect(try b.request("POST", "/v1/withdraw", body: "{\"code\":\"\(code)\"}").status == 200)
        #expect(try a.request("GET", "/v1/cases/\(handleA)").status == 404)
        #expect(try a.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}").status == 404)
        #expect(
            try cluster.psql("SELECT count(*) FROM subject; SELECT count(*) FROM record;", database: cluster.database) == "0\n0")
    }

    /// The database crashes (`pg_ctl stop -m immediate`) while a clinic writes, and comes back
    /// eight seconds later: meanwhile requests get 503 `storage_unavailable` (never a hang, never
    /// a crash of the daemon), the daemon reconnects by itself, every check-up it acknowledged is
    /// there afterwards, and the audit chain verifies.
    @Test func aDatabaseCrashGives503sAndLosesNoAcknowledgedWrite() async throws {
        let cluster = try ThrowawayPostgres()
        let a = try Self.node(cluster, extra: "")
        // systemd's notify socket, to see what STATUS says meanwhile.
        let notifyPath = a.tmp.sub("notify.sock")
        let listener = try DatagramListener(path: notifyPath)
        final class Notices: @unchecked Sendable {
            let lock = NSLock()
            var messages: [String] = []
            var done = false
        }
        let notices = Notices()
        let reader = Thread {
            while !notices.lock.withLock({ notices.done }) {
                if let message = listener.receive(timeoutSeconds: 1) { notices.lock.withLock { notices.messages.append(message) } }
            }
        }
        reader.start()
        // Also when the test fails early: the reader ends.
        defer { notices.lock.withLock { notices.done = true } }
        try a.start(environment: ["NOTIFY_SOCKET": notifyPath])
        defer { a.stop() }
        // Check-up dates are days, each after the case's last one and never after today: a
        // writer that outran a slow crash (a busy test machine resumes the test's sleep late)
        // must not run out of days and get 422 `invalid_date`. So it writes to several cases
        // enrolled 600 days ago (within the category's remission period and cap), moves to the
        // next case on every attempt, and once every case has reached today, waits instead.
        let dates = DateFormatter()
        dates.dateFormat = "yyyy-MM-dd"
        dates.timeZone = TimeZone(identifier: "UTC")
        let enrolled = Date().addingTimeInterval(-600 * 86400)
        // Yesterday in UTC: never after the daemon's today, whatever its local time zone.
        let today = dates.string(from: Date().addingTimeInterval(-86400))
        var handles: [String] = []
        for _ in 0..<8 {
            let enrol = try a.request(
                "POST", "/v1/subjects",
                body: DaemonHarness.enrolBody(givenOn: dates.string(from: enrolled), enrolledOn: dates.string(from: enrolled)))
            handles.append(try #require(enrol.string("case")))
        }
        let handle = handles[0]
        let cases = handles

        final class Tally: @unchecked Sendable {
            let lock = NSLock()
            var acknowledged: [String: [String]] = [:]
            var statuses: [Int: Int] = [:]
            var codes: Set<String> = []
            var stop = false
            func add(_ status: Int, _ handle: String, _ token: String?, _ code: String?) {
                lock.lock()
                defer { lock.unlock() }
                statuses[status, default: 0] += 1
                if let token { acknowledged[handle, default: []].append(token) }
                if let code { codes.insert(code) }
            }
            var stopped: Bool { lock.withLock { stop } }
            func finish() { lock.withLock { stop = true } }
        }
        let tally = Tally()
        // Also when the test fails early: the writer ends.
        defer { tally.finish() }
        let writer = Thread {
            let format = DateFormatter()
            format.dateFormat = "yyyy-MM-dd"
            format.timeZone = TimeZone(identifier: "UTC")
            var days = Array(repeating: enrolled, count: cases.count)
            var n = 0
            // Until the test has seen the recovery (a cap on attempts would let a writer that
            // outran a delayed crash finish before it), or a test that failed early is long gone.
            let deadline = Date().addingTimeInterval(600)
            while !tally.stopped, Date() < deadline {
                guard
                    let index = (0..<cases.count).map({ (n + $0) % cases.count }).first(where: {
                        format.string(from: days[$0].addingTimeInterval(86400)) <= today
                    })
                else {
                    usleep(100_000)
                    continue
                }
                n += 1
                days[index] = days[index].addingTimeInterval(86400)
                let token = "ack-\(n)"
                let body = "{\"on\":\"\(format.string(from: days[index]))\",\"outcome\":\"remission\",\"note\":\"\(token)\"}"
                guard let reply = try? a.request("POST", "/v1/cases/\(cases[index])/checkups", body: body) else {
                    tally.add(0, cases[index], nil, nil)
                    usleep(100_000)
                    continue
                }
                tally.add(reply.status, cases[index], reply.status == 201 ? token : nil, reply.errorCode)
                // Slower while the database is out: fewer days spent on 503s.
                usleep(reply.status == 201 ? 20_000 : 100_000)
            }
        }
        writer.start()
        // The crash comes from a thread of its own once the writer has 20 acknowledged
        // check-ups, not after a sleep of the test's task: on a busy machine that task resumes
        // late, and the writer would have spent its days before the outage.
        final class Crash: @unchecked Sendable {
            let lock = NSLock()
            var ended = false
            var failure: (any Error)?
            var acknowledgedBefore = 0
        }
        let crash = Crash()
        let crasher = Thread {
            let deadline = Date().addingTimeInterval(120)
            func acknowledged() -> Int { tally.lock.withLock { tally.acknowledged.values.map(\.count).reduce(0, +) } }
            while acknowledged() < 20, Date() < deadline { usleep(10_000) }
            crash.lock.withLock { crash.acknowledgedBefore = acknowledged() }
            do { try cluster.crashAndRestart(down: .seconds(8)) } catch { crash.lock.withLock { crash.failure = error } }
            crash.lock.withLock { crash.ended = true }
        }
        crasher.start()
        while !crash.lock.withLock({ crash.ended }) { try await Task.sleep(for: .milliseconds(100)) }
        if let failure = crash.lock.withLock({ crash.failure }) { throw failure }
        // Writes succeed again once the server is back.
        let back = ContinuousClock.now
        var recovered = false
        while !recovered, ContinuousClock.now - back < .seconds(60) {
            try await Task.sleep(for: .milliseconds(200))
            recovered = (try? a.request("GET", "/v1/cases/\(handle)"))?.status == 200
        }
        try await Task.sleep(for: .seconds(1))
        tally.finish()
        while writer.isExecuting { try await Task.sleep(for: .milliseconds(50)) }

        let (statuses, codes) = tally.lock.withLock { (tally.statuses, tally.codes) }
        #expect(recovered, "the daemon did not serve again after the database came back")
        // Writes were acknowledged before the crash, so the check below that none was lost
        // covers writes that went through it.
        let acknowledgedBefore = crash.lock.withLock { crash.acknowledgedBefore }
        #expect(acknowledgedBefore >= 20, "only \(acknowledgedBefore) writes acknowledged before the crash")
        #expect((statuses[503] ?? 0) > 0, "no 503 during the outage: \(statuses)")
        #expect(codes.isSubset(of: ["storage_unavailable"]), "\(codes)")
        #expect(Set(statuses.keys).isSubset(of: [201, 503]), "\(statuses)")
        #expect(a.process != nil && a.process?.hasExited() == nil, "the daemon exited")
        var acknowledgedCount = 0
        for (written, tokens) in tally.lock.withLock({ tally.acknowledged }) {
            let history = try a.request("GET", "/v1/cases/\(written)/checkups")
            #expect(history.status == 200)
            let missing = tokens.filter { !history.body.contains("\"\($0)\"") }
            #expect(missing.isEmpty, "acknowledged but lost: \(missing)")
            acknowledgedCount += tokens.count
        }
        #expect(acknowledgedCount > acknowledgedBefore, "no write acknowledged once the crash began: \(statuses)")
        let verify = try a.request("GET", "/v1/admin/audit/verify")
        #expect(verify.body.contains("\"ok\":true"), "\(verify.body)")
        #expect(a.log.text.contains("the database cannot be reached"), "no log line for the outage")
        // The daemon's probe (every two seconds) sees the recovery.
        for _ in 0..<100 where !a.log.text.contains("the database answers again") { try await Task.sleep(for: .milliseconds(100)) }
        #expect(a.log.text.contains("the database answers again"), "no log line for the recovery")
        // STATUS said what the daemon waited for, then `serving` again.
        try await Task.sleep(for: .seconds(3))
        notices.lock.withLock { notices.done = true }
        while reader.isExecuting { try await Task.sleep(for: .milliseconds(50)) }
        let messages = notices.lock.withLock { notices.messages }
        let waiting = messages.firstIndex { $0.contains("STATUS=waiting for the database") }
        #expect(waiting != nil, "\(messages)")
        if let waiting { #expect(messages[(waiting + 1)...].contains { $0.contains("STATUS=serving") }, "\(messages)") }
        print("outage: \(statuses), \(acknowledgedCount) acknowledged, \(acknowledgedBefore) before the crash")
    }

    /// One node is SIGKILLed while two clinic systems write to one case through both nodes at
    /// once: every check-up either node acknowledged reads back through the survivor, none is
    /// there twice, and the survivor goes on serving.
    @Test func aNodeKilledUnderWriteLoadLosesNothingItAcknowledged() async throws {
        let cluster = try ThrowawayPostgres()
        let a = try Self.node(cluster)
        try a.start()
        defer { a.stop() }
        let b = try Self.node(cluster, keysFrom: a)
        try b.start()
        defer { b.stop() }
        let enrol = try a.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let handleA = try #require(enrol.string("case"))
        let code = try #require(enrol.string("code"))
        let handleB = try #require(try b.request("POST", "/v1/cases", body: "{\"code\":\"\(code)\"}").string("case"))

        final class Acknowledged: @unchecked Sendable {
            let lock = NSLock()
            var tokens: [String] = []
            var others: [Int] = []
            func add(_ token: String) { lock.withLock { tokens.append(token) } }
            func other(_ status: Int) { lock.withLock { others.append(status) } }
        }
        let acknowledged = Acknowledged()
        // Two writers, one per node; the same day for every check-up (a correction of the
        // day's check-up each time), so the two race on the same case's state.
        let first = "{\"on\":\"2026-03-01\",\"outcome\":\"remission\",\"note\":\"first\"}"
        #expect(try a.request("POST", "/v1/cases/\(handleA)/checkups", body: first).status == 201)
        let writers = [(a, handleA, "a"), (b, handleB, "b")].map { node, handle, name in
            Thread {
                for n in 1...250 {
                    let token = "\(name)-\(n)"
                    let body = "{\"on\":\"2026-03-01\",\"outcome\":\"remission\",\"correction\":true,\"note\":\"\(token)\"}"
                    guard let reply = try? node.request("POST", "/v1/cases/\(handle)/checkups", body: body) else { return }
                    if reply.status == 201 { acknowledged.add(token) } else { acknowledged.other(reply.status) }
                    if name == "a", node.process == nil { return }
                }
            }
        }
        for writer in writers { writer.start() }
        try await Task.sleep(for: .seconds(2))
        a.stop(signal: SIGKILL)
        try await Task.sleep(for: .seconds(1))
        while writers.contains(where: \.isExecuting) { try await Task.sleep(for: .milliseconds(50)) }

        let history = try b.request("GET", "/v1/cases/\(handleB)/checkups")
        #expect(history.status == 200)
        let tokens = acknowledged.lock.withLock { acknowledged.tokens }
        let missing = tokens.filter { !history.body.contains("\"\($0)\"") }
        #expect(missing.isEmpty, "acknowledged but lost: \(missing)")
        for token in tokens {
            #expect(history.body.components(separatedBy: "\"\(token)\"").count == 2, "\(token) twice")
        }
        #expect(tokens.contains { $0.hasPrefix("a-") } && tokens.contains { $0.hasPrefix("b-") }, "\(tokens.count) acknowledged")
        // The writers' only other answer is 409 (a lost race, decided again eight times).
        let others = acknowledged.lock.withLock { acknowledged.others }
        #expect(others.allSatisfy { $0 == 409 }, "\(Dictionary(grouping: others, by: { $0 }).mapValues(\.count))")
        let after = "{\"on\":\"2026-03-02\",\"outcome\":\"remission\",\"note\":\"after\"}"
        #expect(try b.request("POST", "/v1/cases/\(handleB)/checkups", body: after).status == 201)
        #expect(try b.request("GET", "/v1/admin/audit/verify").body.contains("\"ok\":true"))
    }

    /// A wrong password, an unreachable server and another application's database: each a
    /// clear error naming it, exit 4 (database), and the database left as it was.
    @Test func aNodeThatCannotUseTheDatabaseSaysWhyAndChangesNothing() throws {
        let cluster = try ThrowawayPostgres()
        let wrong = cluster.writeClientFile("wrong-password", "not-the-password\n")
        let badPassword = try DaemonHarness { config in
            config + """

                [storage]
                backend = "postgresql"

                [postgres]
                socket_dir = "\(cluster.socketDirectory)"
                port = \(cluster.port)
                password_file = "\(wrong)"
                connect_timeout_seconds = 120
                """
        }
        let refused = badPassword.startExpectingRefusal()
        #expect(refused.status == 4, "\(refused.log)")
        #expect(refused.log.contains("refused user \"anonreg\""), "\(refused.log)")
        #expect(try cluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';", database: cluster.database) == "0")

        let unreachable = try DaemonHarness { config in
            config + """

                [storage]
                backend = "postgresql"

                [postgres]
                socket_dir = "\(cluster.clientDirectory)"
                port = 5999
                password_file = "\(cluster.passwordFile)"
                connect_timeout_seconds = 5
                """
        }
        let gone = unreachable.startExpectingRefusal()
        #expect(gone.status == 4, "\(gone.log)")
        #expect(gone.log.contains("is unreachable"), "\(gone.log)")

        try cluster.psql("CREATE TABLE invoices (id int); INSERT INTO invoices VALUES (1);", database: cluster.database)
        let foreign = try Self.node(cluster)
        let theirs = foreign.startExpectingRefusal()
        #expect(theirs.status == 4, "\(theirs.log)")
        #expect(theirs.log.contains("belongs to another application"), "\(theirs.log)")
        #expect(
            try cluster.psql("SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public';", database: cluster.database)
                == "invoices")
    }

    /// A PostgreSQL restore, end to end (docs/OPERATIONS.md §PostgreSQL and several nodes,
    /// "Restoring"): after `pg_restore` of a dump older than the node's anchor, the daemon
    /// refuses to start and names `--record-restore`; `anonregd --record-restore` records it,
    /// signed, and erases again the subject withdrawn after the dump, which the dump brought
    /// back; the daemon then serves and `audit verify` passes, listing the restore.
    @Test func aRestoredDatabaseServesAgainOnceTheRestoreIsRecorded() throws {
        let cluster = try ThrowawayPostgres()
        let d = try Self.node(cluster)
        try d.start()
        let kept = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let erased = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        #expect(kept.status == 201 && erased.status == 201)
        d.stop()
        let dump = try cluster.dump()
        try d.start()
        let erasedCode = try #require(erased.string("code"))
        #expect(try d.request("POST", "/v1/withdraw", body: "{\"code\":\"\(erasedCode)\"}").status == 200)
        #expect(try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()).status == 201)
        d.stop()

        try cluster.restore(dump)
        let refused = d.startExpectingRefusal()
        #expect(refused.status == 4, "\(refused.log)")
        #expect(refused.log.contains("--record-restore"), "\(refused.log)")

        let record = try Binaries.run("anonregd", ["--record-restore", "--config", d.configPath])
        #expect(record.status == 0, "\(record.stdout) \(record.stderr)")
        #expect(record.stdout.contains("restore recorded in the audit log"), "\(record.stdout)")
        let result = try cluster.psql(
            "SELECT result FROM audit_entry WHERE action = 'audit-restore' ORDER BY seq DESC LIMIT 1;", database: cluster.database)
        #expect(result.contains("1 subject(s) erased again"), "\(result)")

        try d.start()
        defer { d.stop() }
        // The subject the dump brought back was erased again by the restore: gone, not refused.
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(erasedCode)\"}").status == 404)
        #expect(try cluster.psql("SELECT count(*) FROM subject;", database: cluster.database) == "1")
        let keptCode = try #require(kept.string("code"))
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(keptCode)\"}").status == 200)
        let verify = try d.request("GET", "/v1/admin/audit/verify")
        #expect(verify.status == 200 && verify.body.contains("\"ok\":true"), "\(verify.body)")
        #expect(verify.body.contains("\"restores\":["), "\(verify.body)")
    }

    /// Over TCP the database must offer TLS and a certificate that chains to `ca_file` and names
    /// the host: a server whose certificate comes from another CA, and a server that offers no
    /// TLS at all, are each refused before a password is sent: exit 4, a message that says which,
    /// and the database left as it was.
    @Test func aNodeWhoseDatabaseFailsTLSSaysWhyAndChangesNothing() throws {
        let tls = try ThrowawayPostgres(.init(tls: true))
        let plain = try ThrowawayPostgres(.init(plainTCP: true))
        for (cluster, caFile, what, says) in [
            (tls, tls.unrelatedCAFile, "a certificate of another CA", "CERTIFICATE_VERIFY_FAILED"),
            (plain, tls.caFile, "no TLS", "the server does not offer TLS"),
        ] {
            let d = try DaemonHarness { config in
                config + """

                    [storage]
                    backend = "postgresql"

                    [postgres]
                    host = "localhost"
                    port = \(cluster.port)
                    ca_file = "\(caFile)"
                    database = "\(cluster.database)"
                    user = "\(cluster.user)"
                    password_file = "\(cluster.passwordFile)"
                    connect_timeout_seconds = 30
                    """
            }
            let refused = d.startExpectingRefusal()
            #expect(refused.status == 4, "\(what): \(refused.log)")
            #expect(refused.log.contains(says), "\(what): \(refused.log)")
            #expect(
                try cluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';", database: cluster.database) == "0",
                "\(what)")
        }
    }

    /// `--check-config` reports the PostgreSQL database as a start would find it, writing nothing.
    @Test func checkConfigInspectsTheDatabaseWithoutWriting() throws {
        let cluster = try ThrowawayPostgres()
        let d = try Self.node(cluster)
        let check = try Binaries.run("anonregd", ["--check-config", "--config", d.configPath])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("postgresql socket"), "\(check.stdout)")
        #expect(check.stdout.contains("absent (a start creates it)"), "\(check.stdout)")
        #expect(try cluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public';", database: cluster.database) == "0")
    }
}
