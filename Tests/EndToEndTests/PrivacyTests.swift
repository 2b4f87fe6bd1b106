import AnonregTestSupport
import Foundation
import Testing

/// Invariant 1 through the real daemon and CLI: distinctive markers written through the API are
/// nowhere in clear in the state directory (database, WAL, shm, keys, config) or the daemon log.
@Suite(.serialized) struct PrivacyTests {
    static let note = "NOTE-7c1e-relapsed-after-funeral"
    static let form = "FORM-9b3f-signed-in-ward-4"
    static let identity = "Zelda Marker-Oyelaran|1979-03-14"

    func cli(_ d: DaemonHarness, _ arguments: [String]) throws -> Binaries.Result {
        try d.anonreg(arguments)
    }

    @Test func markersAreNowhereInClear() throws {
        let d = try DaemonHarness()
        try d.start()
        let linkage = try cli(d, ["linkage", "--identity", Self.identity])
        #expect(linkage.status == 0, "\(linkage.stderr)")
        let linkageHex = linkage.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(linkageHex.count == 128)
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(form: Self.form, linkage: linkageHex))
        #expect(enrol.status == 201)
        let handle = try #require(enrol.string("case"))
        let code = try #require(enrol.string("code"))
        let checkup = "{\"on\":\"2026-02-01\",\"outcome\":\"relapse\",\"substances\":[\"opioids\"],\"note\":\"\(Self.note)\"}"
        #expect(try d.request("POST", "/v1/cases/\(handle)/checkups", body: checkup).status == 201)
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}").status == 200)
        #expect(d.stop() == 0)

        let linkageBytes = (0..<64).map { i in
            UInt8(
                linkageHex[
                    linkageHex.index(linkageHex.startIndex, offsetBy: 2 * i)..<linkageHex.index(linkageHex.startIndex, offsetBy: 2 * i + 2)],
                radix: 16)!
        }
        let needles: [(String, [UInt8])] = [
            ("note", Array(Self.note.utf8)), ("consent form", Array(Self.form.utf8)),
            ("code", Array(code.utf8)), ("code without hyphens", Array(code.replacingOccurrences(of: "-", with: "").utf8)),
            ("linkage hex", Array(linkageHex.utf8)), ("linkage bytes", linkageBytes),
            ("identity", Array(Self.identity.utf8)), ("identity, lower case", Array(Self.identity.lowercased().utf8)),
            ("case handle", Array(handle.utf8)),
        ]
        let files = d.tmp.allFiles()
        #expect(files.contains { $0.hasSuffix("registry.sqlite") })
        #expect(files.contains { $0.hasSuffix(".log") })
        for (name, needle) in needles {
            for file in files {
                #expect(!Bytes.contains(d.tmp.bytes(of: file), needle), "\(name) in clear in \(file)")
            }
        }
    }

    @Test func theLinkageCLIIsStableAcrossSpellingsAndDistinctAcrossPeople() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let a = try cli(d, ["linkage", "--identity", "Anna  Maria SVENSSON|1990-04-01"]).stdout
        let b = try cli(d, ["linkage", "--identity", " anna maria svensson|1990-04-01 "]).stdout
        let c = try cli(d, ["linkage", "--identity", "ＡＮＮＡ maria svensson|1990-04-01"]).stdout  // fullwidth letters: NFKC
        let other = try cli(d, ["linkage", "--identity", "anna maria svensson|1990-04-02"]).stdout
        #expect(a.count == 129)
        #expect(a == b)
        #expect(a == c)
        #expect(a != other)
        #expect(!d.log.text.lowercased().contains("svensson"))
    }

    @Test func cliExitCodesAreDocumented() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let ok = try cli(d, ["health"])
        #expect(ok.status == 0)
        #expect(ok.stdout == "anonregd 0.1.0: ok\n")
        let refused = try cli(d, ["enrol", "--category", "gambling", "--consent-form", "F", "--enrolled-on", "2026-01-10"])
        #expect(refused.status == 3)
        #expect(refused.stderr == "anonreg: category must be one of: dependence, harmful-use [unknown_category, HTTP 422]\n")
        let usage = try cli(d, ["checkup", "case_00000000000000000000000000000000", "--outcome", "remission", "--on", "2026-13-01"])
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("--on must be a real date written YYYY-MM-DD"))
        let missing = try cli(d, ["status", "case_00000000000000000000000000000000"])
        #expect(missing.status == 1)
        #expect(missing.stderr == "anonreg: no such case at this clinic [case_not_found, HTTP 404]\n")
        var env = ProcessInfo.processInfo.environment
        env["ANONREG_SOCKET"] = d.tmp.sub("nothing.sock")
        let unreachable = try Binaries.run("anonreg", ["health"], environment: env)
        #expect(unreachable.status == 4)
        #expect(unreachable.stderr.contains("cannot connect to anonregd"))
    }
}
