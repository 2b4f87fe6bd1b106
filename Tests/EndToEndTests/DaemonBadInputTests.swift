import AnonregTestSupport
import Foundation
import Testing

/// Invariant 7: every bad input gets its documented status and code, and the database is
/// byte-for-byte the same afterwards (`sqlite3 .dump` before and after).
@Suite(.serialized) struct DaemonBadInputTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var method: String
        var path: String
        var body: String?
        var contentType: String? = "application/json"
        var uid: UInt32? = nil
        var status: Int
        var code: String
        var testDescription: String { name }
    }

    static let point = "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c"

    static func cases(handle: String) -> [Case] {
        [
            Case(name: "malformed JSON", method: "POST", path: "/v1/subjects", body: "{\"consent\":", status: 400, code: "malformed_json"),
            Case(name: "not an object", method: "POST", path: "/v1/subjects", body: "[1,2]", status: 400, code: "wrong_type"),
            Case(name: "empty body", method: "POST", path: "/v1/subjects", body: "", status: 400, code: "malformed_json"),
            Case(
                name: "oversize body", method: "POST", path: "/v1/subjects",
                body: "{\"category\":\"" + String(repeating: "x", count: 70_000) + "\"}", status: 413, code: "body_too_large"),
            Case(
                name: "unknown field", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"category\"", with: "\"name\":\"Anna\",\"category\""),
                status: 400, code: "unknown_field"),
            Case(
                name: "unknown nested field", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"form\"", with: "\"birthDate\":\"1990-01-01\",\"form\""),
                status: 400, code: "unknown_field"),
            Case(
                name: "malformed date", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(enrolledOn: "2026-02-30"), status: 400, code: "invalid_date"),
            Case(
                name: "date in another format", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(givenOn: "10.01.2026"), status: 400, code: "invalid_date"),
            Case(
                name: "enrolment in the future", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(givenOn: "2026-01-10", enrolledOn: "2099-01-01"), status: 422, code: "invalid_date"),
            Case(
                name: "consent after enrolment", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(givenOn: "2026-02-10", enrolledOn: "2026-01-10"), status: 422, code: "invalid_consent"),
            Case(
                name: "no consent", method: "POST", path: "/v1/subjects",
                body: "{\"category\":\"dependence\",\"enrolledOn\":\"2026-01-10\"}", status: 422, code: "consent_required"),
            Case(
                name: "consent without monitoring scope", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(scope: "[\"statistics\"]"), status: 422, code: "invalid_consent"),
            Case(
                name: "unknown consent method", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"written\"", with: "\"verbal\""), status: 400,
                code: "invalid_value"),
            Case(
                name: "unknown category", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(category: "gambling"), status: 422, code: "unknown_category"),
            Case(
                name: "wrong type", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"category\":\"dependence\"", with: "\"category\":7"),
                status: 400, code: "wrong_type"),
            Case(
                name: "bad linkage", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(linkage: "zz"), status: 400, code: "invalid_linkage"),
            Case(
                name: "wrong content type", method: "POST", path: "/v1/subjects", body: DaemonHarness.enrolBody(),
                contentType: "application/x-www-form-urlencoded", status: 415, code: "unsupported_media_type"),
            Case(
                name: "identity point", method: "POST", path: "/v1/oprf/evaluate",
                body: "{\"blindedElement\":\"\(String(repeating: "0", count: 64))\"}", status: 400, code: "invalid_element"),
            Case(
                name: "non-canonical point", method: "POST", path: "/v1/oprf/evaluate",
                body: "{\"blindedElement\":\"\(String(repeating: "f", count: 62))7f\"}", status: 400, code: "invalid_element"),
            Case(
                name: "short point", method: "POST", path: "/v1/oprf/evaluate",
                body: "{\"blindedElement\":\"\(point.prefix(62))\"}", status: 400, code: "invalid_element"),
            Case(
                name: "check-up before enrolment", method: "POST", path: "/v1/cases/\(handle)/checkups",
                body: "{\"on\":\"2025-12-01\",\"outcome\":\"remission\"}", status: 422, code: "invalid_date"),
            Case(
                name: "check-up in the future", method: "POST", path: "/v1/cases/\(handle)/checkups",
                body: "{\"on\":\"2099-12-01\",\"outcome\":\"remission\"}", status: 422, code: "invalid_date"),
            Case(
                name: "unknown outcome", method: "POST", path: "/v1/cases/\(handle)/checkups",
                body: "{\"on\":\"2026-02-01\",\"outcome\":\"cured\"}", status: 400, code: "invalid_value"),
            Case(
                name: "substance outside the vocabulary", method: "POST", path: "/v1/cases/\(handle)/checkups",
                body: "{\"on\":\"2026-02-01\",\"outcome\":\"relapse\",\"substances\":[\"chocolate\"]}", status: 422,
                code: "unknown_substance"),
            Case(
                name: "unknown case", method: "GET", path: "/v1/cases/case_00000000000000000000000000000000", status: 404,
                code: "case_not_found"),
            Case(name: "malformed case", method: "GET", path: "/v1/cases/not-a-case", status: 404, code: "case_not_found"),
            Case(
                name: "unknown code", method: "POST", path: "/v1/self",
                body: "{\"code\":\"0000-0000-0000-0000-0000-0000-000\"}", status: 404, code: "code_not_found"),
            Case(
                name: "typo in code", method: "POST", path: "/v1/withdraw", body: "{\"code\":\"0000-0000-0000-0000-0000-0000-001\"}",
                status: 404, code: "code_not_found"),
            Case(name: "bad due date", method: "GET", path: "/v1/due?before=tomorrow", status: 400, code: "invalid_date"),
            Case(name: "unknown query parameter", method: "GET", path: "/v1/due?clinic=other", status: 400, code: "unknown_field"),
            Case(
                name: "body on a body-less route", method: "POST", path: "/v1/cases/\(handle)/withdraw",
                body: "{\"reason\":\"x\"}", status: 400, code: "unknown_field"),
            Case(name: "unknown route", method: "GET", path: "/v2/subjects", status: 404, code: "not_found"),
            Case(
                name: "negative audit export start", method: "GET", path: "/v1/admin/audit/export?since=-1", status: 400,
                code: "invalid_value"),
            Case(
                name: "unknown audit export parameter", method: "GET", path: "/v1/admin/audit/export?actor=x", status: 400,
                code: "unknown_field"),
            Case(
                name: "retire an unknown KEK version", method: "POST", path: "/v1/admin/keys/retire", body: "{\"version\":99}", status: 404,
                code: "unknown_kek_version"),
            Case(
                name: "retire the primary", method: "POST", path: "/v1/admin/keys/retire", body: "{\"version\":1}", status: 409,
                code: "kek_transition_refused"),
            Case(
                name: "destroy a version that is not retired", method: "POST", path: "/v1/admin/keys/destroy", body: "{\"version\":1}",
                status: 409, code: "kek_transition_refused"),
            Case(
                name: "rewrap batch out of range", method: "POST", path: "/v1/admin/keys/rewrap", body: "{\"batchSize\":0}", status: 400,
                code: "invalid_value"),
            Case(
                name: "unknown peer", method: "POST", path: "/v1/subjects", body: DaemonHarness.enrolBody(), uid: 65534,
                status: 403, code: "unknown_peer"),
        ]
    }

    @Test func everyBadInputGetsItsCodeAndChangesNothing() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let handle = try #require(enrol.string("case"))
        let before = try d.registryDump()
        let keyringBefore = try String(contentsOfFile: d.stateDir + "/keys/keyring.json", encoding: .utf8)
        let auditBefore = try d.auditEntryCount()
        #expect(before.contains("INSERT INTO subject"))
        for c in Self.cases(handle: handle) {
            let reply = try d.request(c.method, c.path, body: c.body, contentType: c.contentType, uid: c.uid)
            #expect(reply.status == c.status, "\(c.name): \(reply.body.prefix(200))")
            #expect(reply.errorCode == c.code, "\(c.name): \(reply.body.prefix(200))")
            let message = (reply.json?["error"] as? [String: Any])?["message"] as? String
            #expect(message?.isEmpty == false, "\(c.name) has a message")
        }
        #expect(try d.registryDump() == before, "bad input changed the registry's data")
        #expect(
            try String(contentsOfFile: d.stateDir + "/keys/keyring.json", encoding: .utf8) == keyringBefore, "bad input changed the keyring"
        )
        // Each refusal on a registry route was audited (refusals of the same kind by the same
        // peer share one entry per summary interval: docs/ROBUSTNESS.md §Resource limits), and
        // the unknown peer too, as `unknown peer uid 65534`; unknown routes touch no registry
        // data and are not.
        let results = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                d.stateDir + "/registry.sqlite",
                "SELECT actor || '|' || result FROM audit_entry WHERE seq > \(auditBefore)",
            ]
        ).stdout.split(separator: "\n").map(String.init)
        // A malformed OPRF request (400) evaluated nothing and writes no entry (docs/PROTOCOL.md).
        for c in Self.cases(handle: handle) where c.code != "not_found" && !(c.path == "/v1/oprf/evaluate" && c.status == 400) {
            #expect(
                results.contains { $0.split(separator: "|").last.map(String.init)?.hasPrefix(c.code) == true }, "\(c.name) was not audited")
        }
        #expect(results.contains("unknown peer uid 65534|unknown_peer"))
        #expect(try d.auditEntryCount() <= auditBefore + Self.cases(handle: handle).count)
        // The log never repeats request bodies.
        #expect(!d.log.text.contains("Anna"))
        #expect(!d.log.text.contains("1990-01-01"))
    }
}

/// Issue 14 §4: what the reviewers found breaking a stated rule, each tried against the daemon.
@Suite(.serialized) struct StatedRulesTests {
    /// The host's local day `offset` days from today (the daemon's DayClock uses local time).
    static func day(_ offset: Int) -> String {
        var now = time(nil) + offset * 86_400
        var parts = tm()
        localtime_r(&now, &parts)
        return String(format: "%04d-%02d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
    }

    /// A patient code or a case handle sent as a JSON key or a query key never comes back in the
    /// answer (or the log): the daemon names no field it does not know.
    @Test func secretsSentAsFieldNamesNeverComeBack() throws {
        let d = try DaemonHarness(configure: { $0.replacingOccurrences(of: "statistician_uids = []", with: "statistician_uids = [65533]") })
        try d.start()
        defer { d.stop() }
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let code = try #require(enrol.string("code"))
        let handle = try #require(enrol.string("case"))
        let bare = code.replacingOccurrences(of: "-", with: "")
        let secrets = [bare, code, handle, String(bare.prefix(12))]
        var replies: [(String, DaemonHarness.Reply)] = []
        for key in [bare, handle] {
            replies.append(
                (
                    "JSON key in /v1/subjects",
                    try d.request(
                        "POST", "/v1/subjects",
                        body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"category\"", with: "\"\(key)\":1,\"category\""))
                ))
            replies.append(
                (
                    "nested JSON key",
                    try d.request(
                        "POST", "/v1/subjects",
                        body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"form\"", with: "\"\(key)\":\"x\",\"form\""))
                ))
            replies.append(("JSON key in /v1/self", try d.request("POST", "/v1/self", body: "{\"\(key)\":\"\(key)\"}")))
            replies.append(("body of a body-less route", try d.request("POST", "/v1/cases/\(handle)/withdraw", body: "{\"\(key)\":true}")))
            replies.append(("query key of /v1/due", try d.request("GET", "/v1/due?\(key)=1")))
            replies.append(("query key of /v1/admin/audit/export", try d.request("GET", "/v1/admin/audit/export?\(key)=1")))
            replies.append(("query key of /v1/stats", try d.request("GET", "/v1/stats?from=2026-01&to=2026-01&\(key)=1", uid: 65533)))
            replies.append(("query key of /v1/stats/privacy", try d.request("GET", "/v1/stats/privacy?\(key)=1", uid: 65533)))
        }
        for (what, reply) in replies {
            #expect(reply.status == 400 && reply.errorCode == "unknown_field", "\(what): \(reply.status) \(reply.body)")
            for secret in secrets { #expect(!reply.body.contains(secret), "\(what) echoed it: \(reply.body)") }
        }
        // The answers still say where the unknown field was and what is accepted there.
        #expect(replies[0].1.body.contains("accepts only \\\"consent\\\""))
        #expect(replies[1].1.body.contains("\\\"consent\\\" has a field"))
        for secret in secrets { #expect(!d.log.text.contains(secret), "the log holds it") }
    }

    /// docs/PROTOCOL.md says "1 to 200 characters": a form named in Cyrillic (2 bytes a letter)
    /// or with 4-byte characters gets the same 200 as an ASCII one, and 201 are refused.
    @Test func theConsentFormLimitCountsCharactersNotBytes() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        for (letter, name) in [("Ж", "Cyrillic"), ("𝔉", "4-byte"), ("F", "ASCII")] {
            let ok = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(form: String(repeating: letter, count: 200)))
            #expect(ok.status == 201, "200 \(name) characters: \(ok.body)")
            let before = try d.registryDump()
            let long = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(form: String(repeating: letter, count: 201)))
            #expect(long.status == 422 && long.errorCode == "invalid_consent", "201 \(name) characters: \(long.body)")
            #expect(try d.registryDump() == before)
        }
    }

    /// An enrolment dated exactly the retention cap ago would have ended already: it is refused
    /// (422 invalid_date) and stores nothing; one day later it is accepted and a sweep today
    /// keeps it.
    @Test func anEnrolmentAtTheRetentionCapIsRefused() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let cap = 1825  // dependence's cap_days in the template
        let before = try d.registryDump()
        let atCap = try d.request(
            "POST", "/v1/subjects", body: DaemonHarness.enrolBody(givenOn: Self.day(-cap), enrolledOn: Self.day(-cap)))
        #expect(atCap.status == 422 && atCap.errorCode == "invalid_date", "\(atCap.body)")
        #expect(atCap.body.contains("retention cap"))
        #expect(try d.registryDump() == before, "a refused enrolment stored something")
        let inside = try d.request(
            "POST", "/v1/subjects",
            body: DaemonHarness.enrolBody(givenOn: Self.day(-(cap - 1)), enrolledOn: Self.day(-(cap - 1))))
        #expect(inside.status == 201, "\(inside.body)")
        let handle = try #require(inside.string("case"))
        // Inside the cap it keeps its check-ups... and survives today's sweep.
        let checkup = try d.request("POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"\(Self.day(0))\",\"outcome\":\"remission\"}")
        #expect(checkup.status == 201, "\(checkup.body)")
        let sweep = try d.request("POST", "/v1/admin/sweep")
        #expect(sweep.status == 200)
        #expect(sweep.json?["erasedCap"] as? Int == 0, "\(sweep.body)")
        #expect(try d.request("GET", "/v1/cases/\(handle)").status == 200)
    }
}
