import AnonregTestSupport
import Foundation
import Testing

/// The real anonregd on a temporary socket, driven with curl.
@Suite(.serialized) struct DaemonProtocolTests {
    static let rfcSeed = "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3"

    /// RFC 9497 A.1.1: after `init --oprf-seed-hex` with the RFC seed and key info, BlindEvaluate
    /// over the socket gives the RFC's EvaluationElement for both vectors.
    @Test func oprfOverTheSocketReproducesTheRFCVectors() throws {
        let d = try DaemonHarness(initArguments: ["--oprf-seed-hex", Self.rfcSeed, "--oprf-key-info", "test key"])
        try d.start()
        defer { d.stop() }
        let vectors = [
            (
                "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
                "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e"
            ),
            (
                "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
                "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25"
            ),
        ]
        for (blinded, evaluated) in vectors {
            let reply = try d.request("POST", "/v1/oprf/evaluate", body: "{\"blindedElement\":\"\(blinded)\"}")
            #expect(reply.status == 200)
            #expect(reply.string("evaluationElement") == evaluated)
        }
    }

    @Test func anUnknownUidIsRefused() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        // uid 65534 reaches the socket through group 0 (mode 0660) but is in no clinic.
        for (method, path) in [("GET", "/v1/health"), ("POST", "/v1/subjects"), ("GET", "/metrics"), ("GET", "/no/such/route")] {
            let reply = try d.request(method, path, body: method == "POST" ? DaemonHarness.enrolBody() : nil, uid: 65534, gid: 0)
            #expect(reply.status == 403, "\(method) \(path)")
            #expect(reply.errorCode == "unknown_peer")
        }
        // And the same request as the configured uid works.
        #expect(try d.request("GET", "/v1/health").status == 200)
    }

    @Test func clinicACannotReadClinicBsCase() throws {
        let d = try DaemonHarness { config in
            config + "\n[clinics.other]\nuids = [65534]\ngids = []\n"
        }
        try d.start()
        defer { d.stop() }
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        #expect(enrol.status == 201)
        let handle = try #require(enrol.string("case"))
        for (method, path) in [
            ("GET", "/v1/cases/\(handle)"), ("GET", "/v1/cases/\(handle)/checkups"),
            ("POST", "/v1/cases/\(handle)/code"), ("POST", "/v1/cases/\(handle)/withdraw"),
        ] {
            let reply = try d.request(method, path, body: method == "POST" ? "{}" : nil, uid: 65534, gid: 0)
            #expect(reply.status == 404, "\(method) \(path)")
            #expect(reply.errorCode == "case_not_found")
        }
        let checkup = "{\"on\":\"2026-02-01\",\"outcome\":\"remission\",\"note\":\"x\"}"
        #expect(try d.request("POST", "/v1/cases/\(handle)/checkups", body: checkup, uid: 65534, gid: 0).status == 404)
        // The owner still sees its case, unchanged.
        let mine = try d.request("GET", "/v1/cases/\(handle)/checkups")
        #expect(mine.status == 200)
        #expect((mine.json?["checkups"] as? [Any])?.isEmpty == true)
        // The other clinic's due list does not show it.
        let due = try d.request("GET", "/v1/due?before=2099-01-01", uid: 65534, gid: 0)
        #expect(due.status == 200)
        #expect((due.json?["cases"] as? [Any])?.isEmpty == true)
    }

    @Test func aClinicCannotUseAdminRoutesNorAnAdminClinicRoutes() throws {
        let d = try DaemonHarness { config in
            config.replacingOccurrences(of: "admin_uids = [0]", with: "admin_uids = [0, 65534]")
        }
        try d.start()
        defer { d.stop() }
        // 65534 is only an admin here.
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(), uid: 65534, gid: 0)
        #expect(enrol.status == 403)
        #expect(enrol.errorCode == "forbidden")
        #expect(try d.request("GET", "/v1/admin/keys", uid: 65534, gid: 0).status == 200)
        #expect(try d.request("GET", "/metrics", uid: 65534, gid: 0).status == 200)
    }

    @Test func fullClinicWorkflow() throws {
        let d = try DaemonHarness { config in config + "\n[clinics.second]\nuids = [65534]\ngids = []\n" }
        try d.start()
        defer { d.stop() }
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let handle = try #require(enrol.string("case"))
        let code = try #require(enrol.string("code"))
        let checkup =
            "{\"on\":\"2026-03-01\",\"outcome\":\"remission\",\"substances\":[],\"treatment\":[\"methadone\"],\"note\":\"stable\"}"
        #expect(try d.request("POST", "/v1/cases/\(handle)/checkups", body: checkup).status == 201)
        // A second clinic links by code and sees the history.
        let link = try d.request("POST", "/v1/cases", body: "{\"code\":\"\(code.lowercased())\"}", uid: 65534, gid: 0)
        #expect(link.status == 201)
        let second = try #require(link.string("case"))
        let history = try d.request("GET", "/v1/cases/\(second)/checkups", uid: 65534, gid: 0)
        #expect(history.body.contains("stable"))
        // Self-access by code.
        let me = try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}")
        #expect(me.status == 200)
        #expect((me.json?["clinics"] as? [String]) == ["local", "second"])
        // Re-issue: the old code stops working.
        let reissued = try d.request("POST", "/v1/cases/\(handle)/code", body: "{}")
        #expect(reissued.status == 201)
        let newCode = try #require(reissued.string("code"))
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}").status == 404)
        // Withdrawal by code erases at once, for every clinic.
        #expect(try d.request("POST", "/v1/withdraw", body: "{\"code\":\"\(newCode)\"}").status == 200)
        #expect(try d.request("GET", "/v1/cases/\(handle)").status == 404)
        #expect(try d.request("GET", "/v1/cases/\(second)", uid: 65534, gid: 0).status == 404)
        // Anonymous episodes only count.
        #expect(try d.request("POST", "/v1/episodes/anonymous", body: "{\"category\":\"dependence\",\"on\":\"2026-03-01\"}").status == 201)
    }

    @Test func enrolmentWithALinkageValueAnswersTheSameWhetherSeenOrNot() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let linkage = String(repeating: "ab", count: 64)
        let first = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(linkage: linkage))
        let second = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(linkage: linkage))
        let fresh = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(linkage: String(repeating: "cd", count: 64)))
        #expect([first.status, second.status, fresh.status] == [Int](repeating: 201, count: 3))
        // Identical shape and monitoring; only the random case and code differ.
        func shape(_ r: DaemonHarness.Reply) -> String {
            var json = r.json ?? [:]
            json["case"] = nil
            json["code"] = nil
            let data = try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            return String(decoding: data ?? Data(), as: UTF8.self)
        }
        #expect(shape(first) == shape(second))
        #expect(shape(second) == shape(fresh))
        #expect(Set(first.json?.keys.map { $0 } ?? []) == Set(second.json?.keys.map { $0 } ?? []))
    }

    @Test func theOPRFIsRateLimitedPerClinic() throws {
        let d = try DaemonHarness { config in
            config.replacingOccurrences(of: "oprf_per_minute = 120", with: "oprf_per_minute = 1")
                .replacingOccurrences(of: "oprf_burst = 100", with: "oprf_burst = 3")
        }
        try d.start()
        defer { d.stop() }
        let element = "{\"blindedElement\":\"609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c\"}"
        let statuses = try (0..<5).map { _ in try d.request("POST", "/v1/oprf/evaluate", body: element).status }
        #expect(statuses == [200, 200, 200, 429, 429])
        let reply = try d.request("POST", "/v1/oprf/evaluate", body: element)
        #expect(reply.errorCode == "rate_limited")
    }
}
