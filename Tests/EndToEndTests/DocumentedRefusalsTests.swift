import AnonregTestSupport
import Foundation
import Testing

/// Issue 22 §6: every refusal the server gives for the vocabulary, the validity of an OPRF
/// point and the monitoring policy, and the edges of the admin key routes, answered with the
/// documented status and code, changing nothing. The answers are recorded (ResponseLog), so
/// scripts/check-responses.py checks in `make test` that docs/openapi.yaml lists each code under
/// that status for that route.
@Suite(.serialized) struct DocumentedRefusalsTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var method: String
        var path: String
        var body: String?
        var status: Int
        var code: String?
        var description: String { name }
    }

    /// `harmful-use` leaves relapses to the clinician in this configuration.
    static func harness() throws -> DaemonHarness {
        try DaemonHarness {
            $0.replacingOccurrences(
                of:
                    "[categories.harmful-use]\n# Days between check-ups; a case is due this many days after its latest check-up.\ncheckup_interval_days = 90\n# Days of continuous remission that end monitoring.\nremission_days = 365\n# What a relapse does: \"restart\" the remission clock, \"extend\" the requirement by\n# relapse_extend_days, or leave it to the \"clinician\" (each relapse check-up says which).\nrelapse = \"restart\"",
                with:
                    "[categories.harmful-use]\n# Days between check-ups; a case is due this many days after its latest check-up.\ncheckup_interval_days = 90\n# Days of continuous remission that end monitoring.\nremission_days = 365\n# What a relapse does: \"restart\" the remission clock, \"extend\" the requirement by\n# relapse_extend_days, or leave it to the \"clinician\" (each relapse check-up says which).\nrelapse = \"clinician\""
            )
        }
    }

    @Test func everyRefusalHasItsDocumentedStatusAndChangesNothing() throws {
        let d = try Self.harness()
        try d.start()
        defer { d.stop() }
        let clinician = try #require(
            try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(category: "harmful-use")).string("case"))
        let handle = try #require(try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()).string("case"))
        let checkups = "/v1/cases/\(handle)/checkups"
        func checkup(_ fields: String) -> String { "{\"on\":\"2026-02-01\",\(fields)}" }
        let cases: [Case] = [
            // The vocabulary (anonreg.toml [vocabulary]).
            Case(
                name: "unknown substance", method: "POST", path: checkups,
                body: checkup("\"outcome\":\"relapse\",\"substances\":[\"kryptonite\"]"), status: 422, code: "unknown_substance"),
            Case(
                name: "unknown treatment", method: "POST", path: checkups,
                body: checkup("\"outcome\":\"remission\",\"treatment\":[\"homeopathy\"]"), status: 422, code: "unknown_treatment"),
            Case(
                name: "unknown outcome", method: "POST", path: checkups, body: checkup("\"outcome\":\"cured\""), status: 400,
                code: "invalid_value"),
            Case(
                name: "unknown category", method: "POST", path: "/v1/subjects", body: DaemonHarness.enrolBody(category: "gambling"),
                status: 422, code: "unknown_category"),
            // Point validity (RFC 9496 §4.3.1 decoding; RFC 9497 refuses the identity).
            Case(
                name: "short element", method: "POST", path: "/v1/oprf/evaluate", body: "{\"blindedElement\":\"abcd\"}", status: 400,
                code: "invalid_element"),
            Case(
                name: "non-canonical element", method: "POST", path: "/v1/oprf/evaluate",
                body: "{\"blindedElement\":\"\(String(repeating: "ff", count: 32))\"}", status: 400, code: "invalid_element"),
            Case(
                name: "identity element", method: "POST", path: "/v1/oprf/evaluate",
                body: "{\"blindedElement\":\"\(String(repeating: "00", count: 32))\"}", status: 400, code: "invalid_element"),
            Case(
                name: "not hex", method: "POST", path: "/v1/oprf/evaluate",
                body: "{\"blindedElement\":\"\(String(repeating: "zz", count: 32))\"}", status: 400, code: "invalid_element"),
            Case(
                name: "linkage not 128 hex digits", method: "POST", path: "/v1/subjects", body: DaemonHarness.enrolBody(linkage: "abc"),
                status: 400, code: "invalid_linkage"),
            // The monitoring policy.
            Case(
                name: "relapse without the clinician's action", method: "POST", path: "/v1/cases/\(clinician)/checkups",
                body: checkup("\"outcome\":\"relapse\""), status: 422, code: "relapse_action_required"),
            Case(
                name: "relapse action on a remission", method: "POST", path: "/v1/cases/\(clinician)/checkups",
                body: checkup("\"outcome\":\"remission\",\"relapseAction\":\"restart\""), status: 422, code: "invalid_relapse_action"),
            Case(
                name: "relapse action where the rule is not clinician", method: "POST", path: checkups,
                body: checkup("\"outcome\":\"relapse\",\"relapseAction\":\"extend\""), status: 422, code: "invalid_relapse_action"),
            Case(
                name: "check-up in the future", method: "POST", path: checkups, body: "{\"on\":\"2099-01-01\",\"outcome\":\"remission\"}",
                status: 422, code: "invalid_date"),
            Case(
                name: "check-up before enrolment", method: "POST", path: checkups,
                body: "{\"on\":\"2020-01-01\",\"outcome\":\"remission\"}", status: 422, code: "invalid_date"),
            Case(
                name: "enrolment without consent", method: "POST", path: "/v1/subjects",
                body: "{\"category\":\"dependence\",\"enrolledOn\":\"2026-01-10\"}", status: 422, code: "consent_required"),
            Case(
                name: "consent without monitoring", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(scope: "[\"statistics\"]"), status: 422, code: "invalid_consent"),
            Case(
                name: "enrolment in the future", method: "POST", path: "/v1/subjects",
                body: DaemonHarness.enrolBody(enrolledOn: "2099-01-01"), status: 422, code: "invalid_date"),
            // The admin key routes at their edges.
            Case(
                name: "retire version 0", method: "POST", path: "/v1/admin/keys/retire", body: "{\"version\":0}", status: 400,
                code: "invalid_value"),
            Case(
                name: "retire a version past the schema's maximum", method: "POST", path: "/v1/admin/keys/retire",
                body: "{\"version\":2147483648}", status: 400, code: "invalid_value"),
            Case(
                name: "retire the schema's maximum", method: "POST", path: "/v1/admin/keys/retire", body: "{\"version\":2147483647}",
                status: 404, code: "unknown_kek_version"),
            Case(
                name: "destroy a negative version", method: "POST", path: "/v1/admin/keys/destroy", body: "{\"version\":-1}", status: 400,
                code: "invalid_value"),
            Case(
                name: "rewrap batch of 0", method: "POST", path: "/v1/admin/keys/rewrap", body: "{\"batchSize\":0}", status: 400,
                code: "invalid_value"),
            Case(
                name: "due list with a bad date", method: "GET", path: "/v1/due?before=2026-02-30", body: nil, status: 400,
                code: "invalid_date"),
            Case(
                name: "export with limit 0", method: "GET", path: "/v1/admin/audit/export?limit=0", body: nil, status: 400,
                code: "invalid_value"),
        ]
        let before = try d.registryDump()
        for c in cases {
            let reply = try d.request(c.method, c.path, body: c.body)
            #expect(reply.status == c.status, "\(c.name): \(reply.status) \(reply.body)")
            #expect(reply.errorCode == c.code, "\(c.name): \(reply.body)")
        }
        #expect(try d.registryDump() == before, "a refused request changed registry data")

        // The rewrap body is optional, as the schema says: none at all, or {}.
        for body in [nil, "{}"] as [String?] {
            let reply = try d.request("POST", "/v1/admin/keys/rewrap", body: body, contentType: body == nil ? nil : "application/json")
            #expect(reply.status == 200, "rewrap with body \(body ?? "none"): \(reply.body)")
        }
    }
}
