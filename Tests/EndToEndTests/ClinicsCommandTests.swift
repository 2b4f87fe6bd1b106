import AnonregTestSupport
import Foundation
import Testing

/// `anonreg clinics` edits anonreg.toml keeping its comments; SIGHUP applies it.
@Suite(.serialized) struct ClinicsCommandTests {
    @Test func addListRemoveWithReload() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let before = try String(contentsOfFile: d.configPath, encoding: .utf8)
        let comments = before.split(separator: "\n").filter { $0.hasPrefix("#") }
        #expect(try d.request("GET", "/v1/health", uid: 65534, gid: 0).status == 403)

        let added = try Binaries.run("anonreg", ["clinics", "add", "north", "--uid", "65534", "--config", d.configPath])
        #expect(added.status == 0, "\(added.stderr)")
        let after = try String(contentsOfFile: d.configPath, encoding: .utf8)
        #expect(after.split(separator: "\n").filter { $0.hasPrefix("#") } == comments, "every comment is kept")
        #expect(after.contains("[clinics.north]\nuids = [65534]\ngids = []"))
        #expect(d.tmp.mode(of: d.configPath) == 0o640)

        let list = try Binaries.run("anonreg", ["clinics", "list", "--config", d.configPath])
        #expect(list.stdout == "CLINIC  UIDS   GIDS\nlocal   0\nnorth   65534\n")
        let duplicate = try Binaries.run("anonreg", ["clinics", "add", "north", "--uid", "4", "--config", d.configPath])
        #expect(duplicate.status == 3)
        let sameUID = try Binaries.run("anonreg", ["clinics", "add", "south", "--uid", "65534", "--config", d.configPath])
        #expect(sameUID.status == 3)
        #expect(sameUID.stderr.contains("both clinics"))

        // SIGHUP applies it without a restart.
        kill(try #require(d.pid), SIGHUP)
        var enrol: DaemonHarness.Reply? = nil
        for _ in 0..<100 {
            enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(), uid: 65534, gid: 0)
            if enrol?.status == 201 { break }
            usleep(50_000)
        }
        #expect(enrol?.status == 201)
        let code = try #require(enrol?.string("code"))

        let removed = try Binaries.run("anonreg", ["clinics", "remove", "north", "--config", d.configPath])
        #expect(removed.status == 0)
        #expect(try String(contentsOfFile: d.configPath, encoding: .utf8) == before, "remove undoes add exactly")
        kill(try #require(d.pid), SIGHUP)
        var refused = 0
        for _ in 0..<100 {
            refused = try d.request("GET", "/v1/health", uid: 65534, gid: 0).status
            if refused == 403 { break }
            usleep(50_000)
        }
        #expect(refused == 403)
        // The removed clinic's subject is still reachable by its code.
        #expect(try d.request("POST", "/v1/cases", body: "{\"code\":\"\(code)\"}").status == 201)
    }

    @Test func aBrokenEditIsNeverWritten() throws {
        let d = try DaemonHarness()
        let before = try String(contentsOfFile: d.configPath, encoding: .utf8)
        let bad = try Binaries.run("anonreg", ["clinics", "add", "Bad Name", "--uid", "7", "--config", d.configPath])
        #expect(bad.status == 2)
        let none = try Binaries.run("anonreg", ["clinics", "add", "x", "--config", d.configPath])
        #expect(none.status == 2)
        let missing = try Binaries.run("anonreg", ["clinics", "remove", "nobody", "--config", d.configPath])
        #expect(missing.status == 3)
        #expect(try String(contentsOfFile: d.configPath, encoding: .utf8) == before)
    }
}

/// "A policy change applies to open episodes from the next check-up, and the audit log records it."
@Suite(.serialized) struct PolicyAuditTests {
    @Test func policyChangesAreRecordedOnStartAndReload() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        func policyEntries() throws -> [String] {
            try Binaries.runExecutable(
                "/usr/bin/sqlite3",
                [
                    d.stateDir + "/registry.sqlite",
                    "SELECT actor || ' | ' || result FROM audit_entry WHERE action = 'policy' ORDER BY seq",
                ]
            )
            .stdout.split(separator: "\n").map(String.init)
        }
        var entries = try policyEntries()
        #expect(entries.count == 1)
        #expect(entries.first?.hasPrefix("system start | dependence: every 90d, remission 1095d, relapse restart +180d, cap 1825d") == true)
        // A reload without a policy change records nothing new.
        kill(try #require(d.pid), SIGHUP)
        usleep(500_000)
        #expect(try policyEntries().count == 1)
        // Changing a policy and reloading records the new one.
        let text = try String(contentsOfFile: d.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "remission_days = 1095", with: "remission_days = 730").write(
            toFile: d.configPath, atomically: true, encoding: .utf8)
        kill(try #require(d.pid), SIGHUP)
        for _ in 0..<50 where try policyEntries().count < 2 { usleep(100_000) }
        entries = try policyEntries()
        #expect(entries.count == 2)
        #expect(entries.last?.hasPrefix("system reload | dependence: every 90d, remission 730d") == true)
        // The reloaded policy reaches request handlers: the next check-up records it.
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let handle = try #require(enrol.string("case"))
        let checkup = try d.request("POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\"}")
        #expect(checkup.body.contains("730 days required"), "\(checkup.body.prefix(300))")
    }
}
