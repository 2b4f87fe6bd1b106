import Foundation
import Testing
import AnonregTestSupport

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
            Case(name: "oversize body", method: "POST", path: "/v1/subjects",
                 body: "{\"category\":\"" + String(repeating: "x", count: 70_000) + "\"}", status: 413, code: "body_too_large"),
            Case(name: "unknown field", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"category\"", with: "\"name\":\"Anna\",\"category\""),
                 status: 400, code: "unknown_field"),
            Case(name: "unknown nested field", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"form\"", with: "\"birthDate\":\"1990-01-01\",\"form\""),
                 status: 400, code: "unknown_field"),
            Case(name: "malformed date", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody(enrolledOn: "2026-02-30"), status: 400, code: "invalid_date"),
            Case(name: "date in another format", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody(givenOn: "10.01.2026"), status: 400, code: "invalid_date"),
            Case(name: "enrolment in the future", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody(givenOn: "2026-01-10", enrolledOn: "2099-01-01"), status: 422, code: "invalid_date"),
            Case(name: "consent after enrolment", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody(givenOn: "2026-02-10", enrolledOn: "2026-01-10"), status: 422, code: "invalid_consent"),
            Case(name: "no consent", method: "POST", path: "/v1/subjects",
                 body: "{\"category\":\"dependence\",\"enrolledOn\":\"2026-01-10\"}", status: 422, code: "consent_required"),
            Case(name: "consent without monitoring scope", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody(scope: "[\"statistics\"]"), status: 422, code: "invalid_consent"),
            Case(name: "unknown consent method", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"written\"", with: "\"verbal\""), status: 400, code: "invalid_value"),
            Case(name: "unknown category", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody(category: "gambling"), status: 422, code: "unknown_category"),
            Case(name: "wrong type", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody().replacingOccurrences(of: "\"category\":\"dependence\"", with: "\"category\":7"),
                 status: 400, code: "wrong_type"),
            Case(name: "bad linkage", method: "POST", path: "/v1/subjects",
                 body: DaemonHarness.enrolBody(linkage: "zz"), status: 400, code: "invalid_linkage"),
            Case(name: "wrong content type", method: "POST", path: "/v1/subjects", body: DaemonHarness.enrolBody(),
                 contentType: "application/x-www-form-urlencoded", status: 415, code: "unsupported_media_type"),
            Case(name: "identity point", method: "POST", path: "/v1/oprf/evaluate",
                 body: "{\"blindedElement\":\"\(String(repeating: "0", count: 64))\"}", status: 400, code: "invalid_element"),
            Case(name: "non-canonical point", method: "POST", path: "/v1/oprf/evaluate",
                 body: "{\"blindedElement\":\"\(String(repeating: "f", count: 62))7f\"}", status: 400, code: "invalid_element"),
            Case(name: "short point", method: "POST", path: "/v1/oprf/evaluate",
                 body: "{\"blindedElement\":\"\(point.prefix(62))\"}", status: 400, code: "invalid_element"),
            Case(name: "check-up before enrolment", method: "POST", path: "/v1/cases/\(handle)/checkups",
                 body: "{\"on\":\"2025-12-01\",\"outcome\":\"remission\"}", status: 422, code: "invalid_date"),
            Case(name: "check-up in the future", method: "POST", path: "/v1/cases/\(handle)/checkups",
                 body: "{\"on\":\"2099-12-01\",\"outcome\":\"remission\"}", status: 422, code: "invalid_date"),
            Case(name: "unknown outcome", method: "POST", path: "/v1/cases/\(handle)/checkups",
                 body: "{\"on\":\"2026-02-01\",\"outcome\":\"cured\"}", status: 400, code: "invalid_value"),
            Case(name: "substance outside the vocabulary", method: "POST", path: "/v1/cases/\(handle)/checkups",
                 body: "{\"on\":\"2026-02-01\",\"outcome\":\"relapse\",\"substances\":[\"chocolate\"]}", status: 422, code: "unknown_substance"),
            Case(name: "unknown case", method: "GET", path: "/v1/cases/case_00000000000000000000000000000000", status: 404, code: "case_not_found"),
            Case(name: "malformed case", method: "GET", path: "/v1/cases/not-a-case", status: 404, code: "case_not_found"),
            Case(name: "unknown code", method: "POST", path: "/v1/self",
                 body: "{\"code\":\"0000-0000-0000-0000-0000-0000-000\"}", status: 404, code: "code_not_found"),
            Case(name: "typo in code", method: "POST", path: "/v1/withdraw", body: "{\"code\":\"0000-0000-0000-0000-0000-0000-001\"}",
                 status: 404, code: "code_not_found"),
            Case(name: "bad due date", method: "GET", path: "/v1/due?before=tomorrow", status: 400, code: "invalid_date"),
            Case(name: "unknown query parameter", method: "GET", path: "/v1/due?clinic=other", status: 400, code: "unknown_field"),
            Case(name: "body on a body-less route", method: "POST", path: "/v1/cases/\(handle)/withdraw",
                 body: "{\"reason\":\"x\"}", status: 400, code: "unknown_field"),
            Case(name: "unknown route", method: "GET", path: "/v2/subjects", status: 404, code: "not_found"),
            Case(name: "negative audit export start", method: "GET", path: "/v1/admin/audit/export?since=-1", status: 400, code: "invalid_value"),
            Case(name: "unknown audit export parameter", method: "GET", path: "/v1/admin/audit/export?actor=x", status: 400, code: "unknown_field"),
            Case(name: "retire an unknown KEK version", method: "POST", path: "/v1/admin/keys/retire", body: "{\"version\":99}", status: 404, code: "unknown_kek_version"),
            Case(name: "retire the primary", method: "POST", path: "/v1/admin/keys/retire", body: "{\"version\":1}", status: 409, code: "kek_transition_refused"),
            Case(name: "destroy a version that is not retired", method: "POST", path: "/v1/admin/keys/destroy", body: "{\"version\":1}", status: 409, code: "kek_transition_refused"),
            Case(name: "rewrap batch out of range", method: "POST", path: "/v1/admin/keys/rewrap", body: "{\"batchSize\":0}", status: 400, code: "invalid_value"),
            Case(name: "unknown peer", method: "POST", path: "/v1/subjects", body: DaemonHarness.enrolBody(), uid: 65534,
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
        #expect(try String(contentsOfFile: d.stateDir + "/keys/keyring.json", encoding: .utf8) == keyringBefore, "bad input changed the keyring")
        // Each refusal on a registry route was audited (refusals of the same kind by the same
        // peer share one entry per summary interval: docs/ROBUSTNESS.md §Resource limits), and
        // the unknown peer too, as `unknown peer uid 65534`; unknown routes touch no registry
        // data and are not.
        let results = try Binaries.runExecutable("/usr/bin/sqlite3", [d.stateDir + "/registry.sqlite",
            "SELECT actor || '|' || result FROM audit_entry WHERE seq > \(auditBefore)"]).stdout.split(separator: "\n").map(String.init)
        // A malformed OPRF request (400) evaluated nothing and writes no entry (docs/PROTOCOL.md).
        for c in Self.cases(handle: handle) where c.code != "not_found" && !(c.path == "/v1/oprf/evaluate" && c.status == 400) {
            #expect(results.contains { $0.split(separator: "|").last.map(String.init)?.hasPrefix(c.code) == true }, "\(c.name) was not audited")
        }
        #expect(results.contains("unknown peer uid 65534|unknown_peer"))
        #expect(try d.auditEntryCount() <= auditBefore + Self.cases(handle: handle).count)
        // The log never repeats request bodies.
        #expect(!d.log.text.contains("Anna"))
        #expect(!d.log.text.contains("1990-01-01"))
    }
}
