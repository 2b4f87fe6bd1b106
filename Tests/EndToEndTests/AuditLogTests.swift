import AnonregTestSupport
import Foundation
import Testing

/// Invariant 6: every access is audited in a hash chain with signed checkpoints, and
/// `anonreg audit verify` catches tampering done directly on the SQLite file.
@Suite(.serialized) struct AuditLogTests {
    /// Runs some traffic, stops the daemon (which signs a final checkpoint) and returns it.
    static func populated() throws -> (DaemonHarness, code: String) {
        let d = try DaemonHarness()
        try d.start()
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let handle = try #require(enrol.string("case"))
        let code = try #require(enrol.string("code"))
        _ = try d.request("POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\"}")
        _ = try d.request("GET", "/v1/cases/\(handle)")
        _ = try d.request("GET", "/v1/due")
        _ = try d.request(
            "POST", "/v1/oprf/evaluate", body: "{\"blindedElement\":\"609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c\"}")
        _ = try d.request("GET", "/v1/cases/case_00000000000000000000000000000000")
        _ = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        _ = try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}")
        #expect(d.stop() == 0)
        return (d, code)
    }

    static func verify(_ stateDir: String) throws -> Binaries.Result {
        try Binaries.run("anonreg", ["audit", "verify", "--state-dir", stateDir])
    }

    static func sqlite(_ stateDir: String, _ sql: String) throws {
        let r = try Binaries.runExecutable("/usr/bin/sqlite3", [stateDir + "/registry.sqlite", sql])
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// A copy of the stopped state directory to tamper with.
    static func copy(_ d: DaemonHarness, _ name: String) throws -> String {
        let target = d.tmp.sub(name)
        let r = try Binaries.runExecutable("/bin/cp", ["-a", d.stateDir, target])
        #expect(r.status == 0)
        return target
    }

    @Test func aCleanLogVerifiesOfflineAndOnline() throws {
        let (d, _) = try Self.populated()
        let offline = try Self.verify(d.stateDir)
        #expect(offline.status == 0, "\(offline.stdout)\(offline.stderr)")
        #expect(
            offline.stdout.hasPrefix("audit log OK: 9 entries (1…9), "),
            "the policies at start, then one entry per request, refusals included")
        #expect(offline.stdout.contains("0 entries after the last checkpoint"), "shutdown signs the tail")
        try d.start()
        defer { d.stop() }
        let online = try d.anonreg(["audit", "verify"])
        #expect(online.status == 0)
        #expect(online.stdout.hasPrefix("audit log OK"))
        let export = try d.anonreg(["audit", "export"])
        #expect(export.status == 0)
        let lines = export.stdout.split(separator: "\n").filter { $0.contains("\"type\":\"entry\"") }
        #expect(lines.count == 10, "the verify call itself is audited too")
        #expect(export.stdout.contains("\"type\":\"checkpoint\""), "the export carries the signed checkpoints")
        #expect(lines.first?.contains("\"seq\":1") == true)
        #expect(lines.allSatisfy { $0.contains("\"hash\":\"") && $0.contains("\"actor\":\"") })
    }

    @Test(arguments: [
        ("modified entry", "UPDATE audit_entry SET action = 'read-due-list' WHERE seq = 3;", "entry 3 was modified"),
        ("modified result", "UPDATE audit_entry SET result = 'ok' WHERE seq = 7 AND result = 'case_not_found';", "entry 7 was modified"),
        ("deleted entry", "DELETE FROM audit_entry WHERE seq = 4;", "entry 4 is missing"),
        (
            "swapped entries",
            "UPDATE audit_entry SET seq = 1000 WHERE seq = 2; UPDATE audit_entry SET seq = 2 WHERE seq = 5; UPDATE audit_entry SET seq = 5 WHERE seq = 1000;",
            "entry 2"
        ),
        ("dropped tail", "DELETE FROM audit_entry WHERE seq > 7;", "tail was dropped"),
        ("forged checkpoint", "UPDATE audit_checkpoint SET signature = zeroblob(64);", "invalid signature"),
        (
            "rewritten subject commitment",
            "UPDATE audit_entry SET subject_commit = NULL WHERE subject_commit IS NOT NULL AND seq = (SELECT min(seq) FROM audit_entry WHERE subject_commit IS NOT NULL);",
            "was modified"
        ),
    ])
    func tamperingIsCaught(name: String, sql: String, expected: String) throws {
        let (d, _) = try Self.populated()
        let dir = try Self.copy(d, "tampered")
        try Self.sqlite(dir, sql)
        let result = try Self.verify(dir)
        #expect(result.status == 1, "\(name): \(result.stdout)")
        #expect(result.stdout.hasPrefix("audit log TAMPERED at entry "), "\(name): \(result.stdout)")
        #expect(result.stdout.contains(expected), "\(name): \(result.stdout)")
    }

    @Test func thePatientSeesTheirAccessLogInPlainWords() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let handle = try #require(enrol.string("case"))
        let code = try #require(enrol.string("code"))
        _ = try d.request("POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\"}")
        _ = try d.request("GET", "/v1/cases/\(handle)")
        // Another subject's activity does not show up.
        _ = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let me = try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}")
        let log = try #require(me.json?["accessLog"] as? [[String: Any]])
        let texts = log.compactMap { $0["text"] as? String }
        #expect(texts.count == 3)
        #expect(texts[0].hasSuffix("clinic local enrolled you (with your consent)."))
        #expect(texts[1].hasSuffix("clinic local recorded a check-up."))
        #expect(texts[2].hasSuffix("clinic local looked at your monitoring status."))
        #expect(!me.body.contains(handle), "the access log never names the case handle")
    }
}
