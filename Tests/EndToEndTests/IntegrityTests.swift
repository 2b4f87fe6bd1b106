import AnonregTestSupport
import Foundation
import Testing

/// A database writer without keys changes the clear columns of a running registry with sqlite3.
/// Each attack is answered `500 integrity_error`, never with the other subject's data; the
/// refusal is in the audit log, counted in `/metrics` and logged at critical (docs/PROTOCOL.md
/// §Errors, docs/CRYPTO.md §Authenticated columns).
@Suite(.serialized) struct IntegrityTests {
    static let secondClinicUID: UInt32 = 65534

    static func harness() throws -> DaemonHarness {
        let d = try DaemonHarness { config in config + "\n[clinics.second]\nuids = [\(Self.secondClinicUID)]\ngids = []\n" }
        try d.start()
        return d
    }

    static func sqlite(_ d: DaemonHarness, _ sql: String) throws -> String {
        let result = try Binaries.runExecutable("/usr/bin/sqlite3", ["-cmd", ".timeout 5000", d.stateDir + "/registry.sqlite", sql])
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Enrols one subject at `uid` with a check-up whose note is `marker`; its case and code.
    static func enrol(_ d: DaemonHarness, marker: String, uid: UInt32? = nil) throws -> (handle: String, code: String) {
        let r = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(form: "FORM-\(marker)"), uid: uid)
        let handle = try #require(r.string("case"), "\(r.body)")
        let code = try #require(r.string("code"))
        let c = try d.request(
            "POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\",\"note\":\"\(marker)\"}",
            uid: uid)
        #expect(c.status == 201, "\(c.body)")
        return (handle, code)
    }

    /// The refusal: 500 integrity_error, no marker of the other subject in the body, an audit
    /// entry for the request with result integrity_error, the metric, a critical log line.
    static func expectRefused(
        _ d: DaemonHarness, _ reply: DaemonHarness.Reply, action: String, notServing marker: String,
        auditedBefore: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(reply.status == 500, "\(reply.body)", sourceLocation: sourceLocation)
        #expect(reply.errorCode == "integrity_error", "\(reply.body)", sourceLocation: sourceLocation)
        #expect(!reply.body.contains(marker), "another subject's data was served", sourceLocation: sourceLocation)
        let audited = try sqlite(
            d, "SELECT count(*) FROM audit_entry WHERE seq > \(auditedBefore) AND action = '\(action)' AND result = 'integrity_error'")
        #expect(audited == "1", "the refusal is audited", sourceLocation: sourceLocation)
        let metrics = try d.request("GET", "/metrics").body
        #expect(metrics.contains("anonreg_integrity_failures_total{source=\"request\"}"), sourceLocation: sourceLocation)
        #expect(d.log.text.contains("critical") && d.log.text.contains("integrity failure"), sourceLocation: sourceLocation)
    }

    static func lastSeq(_ d: DaemonHarness) throws -> Int { Int(try sqlite(d, "SELECT coalesce(max(seq), 0) FROM audit_entry")) ?? 0 }

    @Test func theHandleSwapServesNoOtherSubject() throws {
        let d = try Self.harness()
        defer { d.stop() }
        let a = try Self.enrol(d, marker: "MARKER-OF-A")
        _ = try Self.enrol(d, marker: "MARKER-OF-B", uid: Self.secondClinicUID)
        let before = try Self.lastSeq(d)
        _ = try Self.sqlite(d, "UPDATE case_link SET subject_id = 2 WHERE id = 1;")
        try Self.expectRefused(
            d, try d.request("GET", "/v1/cases/\(a.handle)/checkups"), action: "read-checkups",
            notServing: "MARKER-OF-B", auditedBefore: before)
        let before2 = try Self.lastSeq(d)
        let write = try d.request(
            "POST", "/v1/cases/\(a.handle)/checkups", body: "{\"on\":\"2026-03-01\",\"outcome\":\"relapse\",\"note\":\"MEANT-FOR-A\"}")
        try Self.expectRefused(d, write, action: "add-checkup", notServing: "MARKER-OF-B", auditedBefore: before2)
        #expect(try Self.sqlite(d, "SELECT count(*) FROM record WHERE subject_id = 2") == "3", "nothing was recorded against B")
    }

    @Test func theCodeSwapServesAndErasesNoOtherSubject() throws {
        let d = try Self.harness()
        defer { d.stop() }
        let a = try Self.enrol(d, marker: "MARKER-OF-A")
        _ = try Self.enrol(d, marker: "MARKER-OF-B")
        let indexA = try Self.sqlite(d, "SELECT hex(code_index) FROM subject WHERE id = 1")
        let indexB = try Self.sqlite(d, "SELECT hex(code_index) FROM subject WHERE id = 2")
        _ = try Self.sqlite(
            d,
            """
            UPDATE subject SET code_index = X'\(String(repeating: "11", count: 32))' WHERE id = 1;
            UPDATE subject SET code_index = X'\(indexA)' WHERE id = 2;
            UPDATE subject SET code_index = X'\(indexB)' WHERE id = 1;
            """)
        let before = try Self.lastSeq(d)
        try Self.expectRefused(
            d, try d.request("POST", "/v1/self", body: "{\"code\":\"\(a.code)\"}"), action: "self-access",
            notServing: "MARKER-OF-B", auditedBefore: before)
        let before2 = try Self.lastSeq(d)
        try Self.expectRefused(
            d, try d.request("POST", "/v1/withdraw", body: "{\"code\":\"\(a.code)\"}"), action: "withdraw-by-code",
            notServing: "MARKER-OF-B", auditedBefore: before2)
        #expect(try Self.sqlite(d, "SELECT count(*) FROM subject") == "2", "the withdrawal erased nobody")
    }

    @Test func theDeletedCheckupIsAnIntegrityError() throws {
        let d = try Self.harness()
        defer { d.stop() }
        let a = try Self.enrol(d, marker: "MARKER-OF-A")
        _ = try Self.sqlite(d, "DELETE FROM record WHERE kind = 'checkup';")
        let before = try Self.lastSeq(d)
        try Self.expectRefused(
            d, try d.request("GET", "/v1/cases/\(a.handle)"), action: "read-status", notServing: "MARKER", auditedBefore: before)
    }

    @Test func theReplayedOldCheckupRowIsAnIntegrityError() throws {
        let d = try Self.harness()
        defer { d.stop() }
        let a = try Self.enrol(d, marker: "MARKER-OF-A")
        _ = try Self.sqlite(
            d,
            """
            INSERT INTO record (subject_id, kind, schema_version, sealed)
            SELECT subject_id, kind, schema_version, sealed FROM record WHERE kind = 'checkup';
            """)
        let before = try Self.lastSeq(d)
        try Self.expectRefused(
            d, try d.request("GET", "/v1/cases/\(a.handle)/checkups"), action: "read-checkups",
            notServing: "MARKER", auditedBefore: before)
        // The admin's sweep erases it now, and says so.
        let sweep = try d.request("POST", "/v1/admin/sweep", body: nil)
        #expect(sweep.status == 200 && sweep.body.contains("\"erasedIntegrity\":1"), "\(sweep.body)")
        #expect(try Self.sqlite(d, "SELECT count(*) FROM subject") == "0")
        #expect(try d.request("GET", "/metrics").body.contains("anonreg_integrity_failures_total{source=\"check\"}"))
    }
}

/// The sealed monitoring summary in the running daemon (docs/CRYPTO.md §Monitoring summary,
/// docs/STORAGE.md §Summary).
@Suite(.serialized) struct SummaryDaemonTests {
    /// Another subject's summary copied onto a row: the status read and the check-up that would
    /// decide from it are refused like any tampered record, audited, counted and logged.
    @Test func anotherSubjectsSummaryIsRefused() throws {
        let d = try IntegrityTests.harness()
        defer { d.stop() }
        let a = try IntegrityTests.enrol(d, marker: "MARKER-OF-A")
        _ = try IntegrityTests.enrol(d, marker: "MARKER-OF-B")
        let before = try IntegrityTests.lastSeq(d)
        _ = try IntegrityTests.sqlite(d, "UPDATE subject SET summary = (SELECT summary FROM subject WHERE id = 2) WHERE id = 1")
        try IntegrityTests.expectRefused(
            d, try d.request("GET", "/v1/cases/\(a.handle)"), action: "read-status", notServing: "MARKER-OF-B", auditedBefore: before)
        let before2 = try IntegrityTests.lastSeq(d)
        let write = try d.request("POST", "/v1/cases/\(a.handle)/checkups", body: "{\"on\":\"2026-03-01\",\"outcome\":\"remission\"}")
        try IntegrityTests.expectRefused(d, write, action: "add-checkup", notServing: "MARKER-OF-B", auditedBefore: before2)
    }

    /// A registry whose subjects have no summary (written before v5-sealed-summary, as a
    /// migrated database is): the daemon serves them from their history at once, and seals their
    /// summaries by itself while it serves.
    @Test func theDaemonSealsMissingSummariesWhileItServes() throws {
        let d = try IntegrityTests.harness()
        defer { d.stop() }
        let cases = try (0..<3).map { try IntegrityTests.enrol(d, marker: "M\($0)") }
        let statuses = try cases.map { try d.request("GET", "/v1/cases/\($0.handle)").body }
        #expect(d.stop() == 0)
        _ = try IntegrityTests.sqlite(d, "UPDATE subject SET summary = NULL")
        try d.start()
        for (c, status) in zip(cases, statuses) {
            #expect(try d.request("GET", "/v1/cases/\(c.handle)").body == status)
        }
        var missing = "3"
        for _ in 0..<600 where missing != "0" {
            usleep(100_000)
            missing = try IntegrityTests.sqlite(d, "SELECT count(*) FROM subject WHERE summary IS NULL")
        }
        #expect(missing == "0", "the daemon left \(missing) subjects without a summary")
        #expect(d.log.text.contains("monitoring summary backfill done"))
        for (c, status) in zip(cases, statuses) {
            #expect(try d.request("GET", "/v1/cases/\(c.handle)").body == status)
        }
    }
}
