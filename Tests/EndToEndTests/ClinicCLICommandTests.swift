import AnonregTestSupport
import Foundation
import Testing

/// The clinic calls the CLI lacked before: `reissue-code`, `checkups`, `anonymous-episode`,
/// with their exact output, `--json` and the documented exit codes.
@Suite(.serialized) struct ClinicCLICommandTests {
    static func enrol(_ d: DaemonHarness) throws -> (handle: String, code: String) {
        let r = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        return (try #require(r.string("case")), try #require(r.string("code")))
    }

    @Test func reissueCodePrintsTheNewCodeAndTheOldOneStopsWorking() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let (handle, oldCode) = try Self.enrol(d)
        let human = try d.anonreg(["reissue-code", handle])
        #expect(human.status == 0, "\(human.stderr)")
        let code = try #require(human.stdout.split(separator: "\n").dropFirst().first?.split(separator: " ").last.map(String.init))
        #expect(
            human.stdout == """
                case              \(handle)
                new patient code  \(code)

                The old code no longer works. Give the new code to the patient (for example on a card). It is shown only now.

                """)
        #expect(code != oldCode)
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(oldCode)\"}").errorCode == "code_not_found")
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}").status == 200)
        let json = try d.anonreg(["reissue-code", handle, "--json"])
        #expect(json.status == 0)
        let again = try #require((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["code"] as? String)
        #expect(json.stdout == "{\"code\":\"\(again)\"}\n")
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}").errorCode == "code_not_found")
        // Another clinic's or a made-up handle: 404 case_not_found, exit 1, nothing printed.
        let missing = try d.anonreg(["reissue-code", "case_00000000000000000000000000000000"])
        #expect(missing.status == 1)
        #expect(missing.stdout.isEmpty)
        #expect(missing.stderr == "anonreg: no such case at this clinic [case_not_found, HTTP 404]\n")
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(again)\"}").status == 200)
    }

    @Test func checkupsListsEveryCheckupInRecordedOrder() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let (handle, _) = try Self.enrol(d)
        let empty = try d.anonreg(["checkups", handle])
        #expect(empty.stdout == "No check-up is recorded for this case.\n")
        #expect(try d.anonreg(["checkups", handle, "--json"]).stdout == "{\"checkups\":[]}\n")
        for body in [
            "{\"on\":\"2026-02-01\",\"outcome\":\"remission\",\"treatment\":[\"methadone\",\"psychosocial\"],\"note\":\"urine test negative\\nstable\"}",
            "{\"on\":\"2026-03-01\",\"outcome\":\"relapse\",\"substances\":[\"opioids\"],\"treatment\":[\"buprenorphine\"]}",
            "{\"on\":\"2026-02-01\",\"outcome\":\"missed\",\"correction\":true,\"note\":\"was not seen\"}",
        ] {
            #expect(try d.request("POST", "/v1/cases/\(handle)/checkups", body: body).status == 201)
        }
        let human = try d.anonreg(["checkups", handle])
        #expect(human.status == 0, "\(human.stderr)")
        #expect(
            human.stdout == """
                ON          OUTCOME    CLINIC  CORRECTION  SUBSTANCES  TREATMENT               NOTE
                ----------  ---------  ------  ----------  ----------  ----------------------  ----------------------------
                2026-02-01  remission  local   -           -           methadone,psychosocial  urine test negative / stable
                2026-03-01  relapse    local   -           opioids     buprenorphine           -
                2026-02-01  missed     local   yes         -           -                       was not seen

                """)
        let json = try d.anonreg(["checkups", handle, "--json"])
        #expect(
            json.stdout == """
                {"checkups":[{"clinic":"local","correction":false,"note":"urine test negative\\nstable","on":"2026-02-01","outcome":"remission","substances":[],"treatment":["methadone","psychosocial"]},\
                {"clinic":"local","correction":false,"note":"","on":"2026-03-01","outcome":"relapse","substances":["opioids"],"treatment":["buprenorphine"]},\
                {"clinic":"local","correction":true,"note":"was not seen","on":"2026-02-01","outcome":"missed","substances":[],"treatment":[]}]}

                """)
        let missing = try d.anonreg(["checkups", "case_ffffffffffffffffffffffffffffffff", "--json"])
        #expect(missing.status == 1)
        #expect(missing.stderr == "anonreg: no such case at this clinic [case_not_found, HTTP 404]\n")
    }

    @Test func anonymousEpisodeCountsAndRefusesWithTheDocumentedExitCodes() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let dumpBefore = try d.registryDump()
        let human = try d.anonreg(["anonymous-episode", "--category", "harmful-use", "--on", "2026-01-05"])
        #expect(human.status == 0, "\(human.stderr)")
        #expect(human.stdout == "Counted one anonymous harmful-use episode on 2026-01-05. Nothing about the person was stored.\n")
        let json = try d.anonreg(["anonymous-episode", "--category", "dependence", "--on", "2026-01-06", "--json"])
        #expect(json.stdout == "{\"status\":\"counted\"}\n")
        // Only counters changed: no subject, case or record.
        let counters = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                d.stateDir + "/registry.sqlite",
                "SELECT (SELECT count(*) FROM subject), (SELECT count(*) FROM case_link), (SELECT count(*) FROM record)",
            ])
        #expect(counters.stdout == "0|0|0\n")
        #expect(try d.registryDump() != dumpBefore)
        // Refused by policy (422): exit 3. Not a date: exit 2, before any request.
        let unknown = try d.anonreg(["anonymous-episode", "--category", "gambling", "--on", "2026-01-05"])
        #expect(unknown.status == 3)
        #expect(unknown.stderr == "anonreg: category must be one of: dependence, harmful-use [unknown_category, HTTP 422]\n")
        let future = try d.anonreg(["anonymous-episode", "--category", "dependence", "--on", "2999-01-01"])
        #expect(future.status == 3)
        let badDate = try d.anonreg(["anonymous-episode", "--category", "dependence", "--on", "05.01.2026"])
        #expect(badDate.status == 2)
        #expect(badDate.stderr.contains("--on must be a real date written YYYY-MM-DD"))
    }
}
