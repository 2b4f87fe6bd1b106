import AnonregTestSupport
import Foundation
import Testing

/// DESIGN invariant 9: no peer can deny service to another (docs/ROBUSTNESS.md §Resource limits).
/// Each test is an attack by a real, separate peer (another uid through setpriv) against the
/// real daemon, and checks what another peer still gets. Needs root (setpriv).
@Suite(.serialized) struct ResourceLimitsTests {
    /// A non-clinic user in the socket's group, and a clinic (north) on its own uid.
    static let outsider: UInt32 = 65534
    static let north: UInt32 = 61203

    /// With ANONREG_TEST_BINARIES (another build, e.g. main's, which knows no `[limits]`), the
    /// settings are left out, so that the attacks run against that build's defaults.
    static func harness(limits: [String: String] = [:]) throws -> DaemonHarness {
        let otherBuild = !(ProcessInfo.processInfo.environment["ANONREG_TEST_BINARIES"] ?? "").isEmpty
        return try DaemonHarness { text in
            DaemonHarness.setting(text, otherBuild ? [:] : limits).replacingOccurrences(
                of: "[rate_limits]",
                with: """
                    [clinics.north]
                    uids = [\(north)]
                    gids = []

                    [rate_limits]
                    """)
        }
    }

    /// Counts the entries of the audit log whose actor and result match (SQL LIKE patterns).
    static func auditEntries(_ daemon: DaemonHarness, actor: String, result: String = "%") throws -> [String] {
        try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                daemon.stateDir + "/registry.sqlite",
                "SELECT result FROM audit_entry WHERE actor LIKE '\(actor)' AND result LIKE '\(result)' ORDER BY seq",
            ]
        )
        .stdout.split(separator: "\n").map(String.init)
    }

    static func metric(_ daemon: DaemonHarness, _ prefix: String) throws -> Double {
        let text = try daemon.request("GET", "/metrics").body
        return text.split(separator: "\n").filter { $0.hasPrefix(prefix) }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    /// §1: a user that is not a clinic opens connections until it can open no more, with the
    /// daemon's RLIMIT_NOFILE lowered to 512; a clinic on another uid floods connections too.
    /// Another clinic must still be served, the daemon must not spin on failing accepts or die,
    /// and the floods must be held to their caps.
    @Test func connectionFloodsDoNotLockOutAnotherClinic() throws {
        let daemon = try Self.harness()
        try daemon.start(launcher: ["/usr/bin/prlimit", "--nofile=512:512"])
        defer { daemon.stop() }
        let outsiderOut = daemon.tmp.sub("outsider.json")
        let northOut = daemon.tmp.sub("north.json")
        let outsider = try AttackPeer.start(uid: Self.outsider, ["hold", daemon.socket, "2000", "30"], output: outsiderOut)
        let north = try AttackPeer.start(uid: Self.north, ["hold", daemon.socket, "2000", "30"], output: northOut)
        defer {
            outsider.signal(SIGKILL)
            outsider.wait()
            north.signal(SIGKILL)
            north.wait()
        }
        let held = try AttackPeer.result(in: outsiderOut)
        let northHeld = try AttackPeer.result(in: northOut)
        print(
            "limits: outsider opened=\(held["opened"] ?? 0) alive=\(held["alive"] ?? 0); north opened=\(northHeld["opened"] ?? 0) alive=\(northHeld["alive"] ?? 0)"
        )
        // The clinic `local` (this test's uid) is served while both floods hold their connections.
        var served = 0
        for _ in 0..<20 {
            if let reply = try? daemon.request("GET", "/v1/health", extraCurl: ["--max-time", "5"]), reply.status == 200 { served += 1 }
        }
        #expect(served == 20)
        #expect((held["alive"] as? Int ?? .max) <= 16, "peers with no role hold at most limits.max_unknown_connections")
        #expect((northHeld["alive"] as? Int ?? .max) <= 64, "one uid holds at most limits.max_connections_per_peer")
        #expect(daemon.pid.map { kill($0, 0) == 0 } == true)
        #expect(try Self.metric(daemon, "anonreg_connections_refused_total") > 0)
        // Refusals are logged at most once per uid and summary interval.
        let refusalLines = daemon.log.text.split(separator: "\n").filter { $0.contains("connection refused: cap reached") }
        #expect(refusalLines.count <= 4, "refusals logged once per uid: \(refusalLines.count) lines")
        // The daemon stays up and answering for a while with the floods still held.
        sleep(3)
        #expect((try? daemon.request("GET", "/v1/health", extraCurl: ["--max-time", "5"]))?.status == 200)
        #expect(daemon.pid.map { kill($0, 0) == 0 } == true)
    }

    /// §2: a body, or the headers, sent one byte at a time are cut at `limits.request_seconds`
    /// with `408 request_timeout`, logged as such (never as 413) and not audited.
    @Test(arguments: ["body", "head"]) func trickledRequestsAreCutAtTheDeadline(_ what: String) throws {
        let daemon = try Self.harness(limits: ["request_seconds": "2"])
        try daemon.start()
        defer { daemon.stop() }
        let before = try daemon.auditEntryCount()
        let result = try AttackPeer.run(uid: Self.north, ["trickle", daemon.socket, "0.25", "15", what])
        let answer = result["answer"] as? String ?? ""
        print("limits: trickle \(what): \(result)")
        #expect((result["seconds"] as? Double ?? 99) < 10, "the daemon ended the trickle")
        #expect(answer.hasPrefix("HTTP/1.1 408"))
        #expect(answer.contains("\"code\":\"request_timeout\""))
        #expect(result["closed"] as? Bool == true)
        #expect(try daemon.auditEntryCount() == before, "an abandoned request is not audited")
        // A request line ends with its status; matching the status anywhere would also match
        // a pid or a timestamp that happens to contain the digits.
        let statuses = daemon.log.text.split(separator: "\n").compactMap { $0.split(separator: " ").last }
        #expect(statuses.contains("408"))
        #expect(!statuses.contains("413"))
    }

    /// §3: a clinic that writes flat out is answered 429 with Retry-After once over its write
    /// budget; another clinic's budget is its own.
    @Test func clinicOverItsWriteBudgetGets429WithRetryAfter() throws {
        // One token a minute: a slow machine taking seconds per request refills nothing in the
        // test's time, so exactly the burst is served.
        let daemon = try Self.harness(limits: ["writes_per_minute": "1", "write_burst": "5"])
        try daemon.start()
        defer { daemon.stop() }
        var statuses: [Int] = []
        let headers = daemon.tmp.sub("headers.txt")
        for _ in 0..<8 {
            statuses.append(try daemon.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(), extraCurl: ["-D", headers]).status)
        }
        #expect(statuses.prefix(5).allSatisfy { $0 == 201 })
        #expect(statuses.suffix(3).allSatisfy { $0 == 429 })
        let last = try String(contentsOfFile: headers, encoding: .utf8).lowercased()
        #expect(last.contains("retry-after: "))
        let refused = try daemon.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        #expect(refused.errorCode == "rate_limited")
        // North's budget is untouched by local's flood.
        let north = try AttackPeer.run(uid: Self.north, ["requests", daemon.socket, "1", "GET", "/v1/due"])
        #expect((north["statuses"] as? [String: Int])?["200"] == 1)
        #expect(try Self.metric(daemon, "anonreg_budget_refused_total") >= 4)
    }

    /// §4: 300 probes for case handles that do not exist cost two audit entries (the first at
    /// once, then one summary with the count), not 300, and two access-log lines.
    @Test func repeatedRefusalsAreSummarised() throws {
        let daemon = try Self.harness(limits: ["refusal_summary_seconds": "2"])
        try daemon.start()
        defer { daemon.stop() }
        let client = SocketClient(socket: daemon.socket)
        for i in 0..<300 {
            let reply = try client.request("GET", "/v1/cases/case_\(String(format: "%026d", i))")
            #expect(reply.status == 404)
        }
        #expect(
            try Self.auditEntries(daemon, actor: "clinic local", result: "case_not_found%").count == 1, "the first probe is written at once"
        )
        sleep(4)
        let entries = try Self.auditEntries(daemon, actor: "clinic local", result: "case_not_found%")
        #expect(entries.count == 2)
        #expect(entries.last?.hasPrefix("case_not_found; 299 more from ") == true, "\(entries)")
        let lines = daemon.log.text.split(separator: "\n").filter { $0.contains("/v1/cases/{case}") && $0.hasSuffix(" 404") }
        #expect(lines.count <= 2, "access log: \(lines.count) lines for 300 refusals")
        #expect(daemon.log.text.contains("299 more like this"))
        #expect(try daemon.anonreg(["audit", "verify"]).status == 0)
    }

    /// Issue 14 §4: a peer with no role is audited as `unknown peer uid N`, once per summary
    /// interval with a count, so that a flood of its requests cannot fill the disk.
    @Test func unknownPeersAreAuditedWithABound() throws {
        let daemon = try Self.harness(limits: ["refusal_summary_seconds": "2"])
        try daemon.start()
        defer { daemon.stop() }
        let flood = try AttackPeer.run(uid: Self.outsider, ["requests", daemon.socket, "200", "GET", "/v1/health"])
        #expect((flood["statuses"] as? [String: Int])?["403"] == 200)
        #expect(try Self.auditEntries(daemon, actor: "unknown peer uid \(Self.outsider)").count == 1)
        sleep(4)
        let entries = try Self.auditEntries(daemon, actor: "unknown peer uid \(Self.outsider)")
        #expect(
            entries == ["unknown_peer", entries.last ?? ""] && entries.last?.hasPrefix("unknown_peer; 199 more from ") == true, "\(entries)"
        )
        #expect(try daemon.anonreg(["audit", "verify"]).status == 0)
    }

    /// §4: what the HTTP parser refuses gets the same JSON error body and an access-log line.
    @Test func parserRefusalsGetAJSONBodyAndALogLine() throws {
        let daemon = try Self.harness()
        try daemon.start()
        defer { daemon.stop() }
        let garbage = Array("GET /v1/health HTTP/1.1\r\nHost: anonreg\r\nContent-Length: x\r\n\r\n".utf8)
        let result = try AttackPeer.run(uid: Self.north, ["raw", daemon.socket, garbage.map { String(format: "%02x", $0) }.joined()])
        let answer = result["answer"] as? String ?? ""
        #expect(answer.hasPrefix("HTTP/1.1 400"), "\(answer)")
        #expect(answer.contains("\"code\":\"malformed_request\""))
        #expect(daemon.log.text.contains("uid=\(Self.north)") || daemon.log.text.contains("peer.uid=\(Self.north)"))
        #expect(daemon.log.text.contains(" 400"))
    }
}
