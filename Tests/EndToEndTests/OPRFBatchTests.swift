import AnonregTestSupport
import Foundation
import Testing

/// Batched OPRF (`{"blindedElements":[...]}`): RFC answers in order, a bad batch refused whole
/// with nothing evaluated, every element charged to the clinic's rate limit, one audit entry
/// with the count per batch.
@Suite(.serialized) struct OPRFBatchTests {
    static let rfcSeed = "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3"
    static let v1 = (
        "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e"
    )
    static let v2 = (
        "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25"
    )

    static func batch(_ elements: [String]) -> String {
        "{\"blindedElements\":[" + elements.map { "\"\($0)\"" }.joined(separator: ",") + "]}"
    }

    /// The audit log's (action, result) pairs, oldest first.
    static func audit(_ d: DaemonHarness) throws -> [(action: String, result: String)] {
        let r = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                "-separator", "\t", d.stateDir + "/registry.sqlite",
                "SELECT action, result FROM audit_entry ORDER BY seq",
            ])
        return r.stdout.split(separator: "\n").map { line in
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    static func harness(perMinute: Int = 1, burst: Int) throws -> DaemonHarness {
        let d = try DaemonHarness(initArguments: ["--oprf-seed-hex", rfcSeed, "--oprf-key-info", "test key"]) { config in
            config.replacingOccurrences(of: "oprf_per_minute = 120", with: "oprf_per_minute = \(perMinute)")
                .replacingOccurrences(of: "oprf_burst = 100", with: "oprf_burst = \(burst)")
        }
        try d.start()
        return d
    }

    @Test func aBatchAnswersTheRFCEvaluationsInOrderWithOneAuditEntry() throws {
        let d = try Self.harness(burst: 100)
        defer { d.stop() }
        let reply = try d.request("POST", "/v1/oprf/evaluate", body: Self.batch([Self.v1.0, Self.v2.0, Self.v1.0]))
        #expect(reply.status == 200, "\(reply.body)")
        #expect(reply.json?["evaluationElements"] as? [String] == [Self.v1.1, Self.v2.1, Self.v1.1])
        #expect(reply.json?.keys.sorted() == ["evaluationElements"])
        let entries = try Self.audit(d).filter { $0.action == "oprf-evaluate" }
        #expect(entries.map(\.result) == ["ok (3 elements)"])
        // The single form is unchanged.
        let single = try d.request("POST", "/v1/oprf/evaluate", body: "{\"blindedElement\":\"\(Self.v2.0)\"}")
        #expect(single.body == "{\"evaluationElement\":\"\(Self.v2.1)\"}")
        #expect(try Self.audit(d).filter { $0.action == "oprf-evaluate" }.map(\.result) == ["ok (3 elements)", "ok"])
    }

    /// Each bad batch gets its documented error, and the audit log holds no entry for it: a
    /// malformed request evaluated nothing and touched no registry data. A refused batch costs
    /// one token (the request's), never its elements, so a flood of them stays rate-limited.
    @Test func badBatchesAreRefusedWholeAndNothingIsEvaluatedOrCounted() throws {
        let d = try Self.harness(burst: 100)
        defer { d.stop() }
        var withBadElement = Array(repeating: Self.v1.0, count: 100)
        withBadElement[37] = String(repeating: "0", count: 64)  // the identity element
        var nonCanonical = Array(repeating: Self.v2.0, count: 50)
        nonCanonical[49] = String(repeating: "f", count: 62) + "7f"
        var shortHex = [Self.v1.0, Self.v2.0]
        shortHex[1] = String(Self.v2.0.dropLast(2))
        let cases: [(name: String, body: String, code: String, index: Int?)] = [
            ("empty batch", Self.batch([]), "invalid_value", nil),
            ("101 elements", Self.batch(Array(repeating: Self.v1.0, count: 101)), "invalid_value", nil),
            ("invalid point at index 37", Self.batch(withBadElement), "invalid_element", 37),
            ("non-canonical point at index 49", Self.batch(nonCanonical), "invalid_element", 49),
            ("short hex at index 1", Self.batch(shortHex), "invalid_element", 1),
            (
                "single and batch fields mixed", "{\"blindedElement\":\"\(Self.v1.0)\",\"blindedElements\":[\"\(Self.v2.0)\"]}",
                "invalid_value", nil
            ),
            ("an element that is not a string", "{\"blindedElements\":[\"\(Self.v1.0)\",7]}", "wrong_type", nil),
            ("neither field", "{}", "missing_field", nil),
            ("an unknown field beside the batch", "{\"blindedElements\":[\"\(Self.v1.0)\"],\"identity\":\"Anna\"}", "unknown_field", nil),
        ]
        for c in cases {
            let before = try Self.audit(d)
            let reply = try d.request("POST", "/v1/oprf/evaluate", body: c.body)
            #expect(reply.status == 400, "\(c.name): \(reply.body)")
            #expect(reply.errorCode == c.code, "\(c.name): \(reply.body)")
            let error = reply.json?["error"] as? [String: Any]
            #expect(error?["index"] as? Int == c.index, "\(c.name): \(reply.body)")
            if let index = c.index { #expect((error?["message"] as? String)?.contains("blindedElements[\(index)]") == true) }
            #expect(reply.json?["evaluationElements"] == nil && reply.json?["evaluationElement"] == nil)
            let added = Array(try Self.audit(d).dropFirst(before.count))
            #expect(added.isEmpty, "\(c.name): a bad batch writes no audit entry: \(added)")
        }
        #expect(try Self.audit(d).filter { $0.result.hasPrefix("ok") }.isEmpty, "no bad batch was evaluated")
        // The refused batches took one token each: exactly 100 - cases.count are left.
        let left = 100 - cases.count
        let fits = try d.request("POST", "/v1/oprf/evaluate", body: Self.batch(Array(repeating: Self.v1.0, count: left)))
        #expect(fits.status == 200, "\(fits.body)")
        #expect(try d.request("POST", "/v1/oprf/evaluate", body: "{\"blindedElement\":\"\(Self.v1.0)\"}").status == 429)
    }

    /// Each element takes a token; a batch the bucket cannot cover is refused whole (429) and
    /// takes only the request's token; a batch larger than the bucket is a 400, not a 429.
    @Test func everyElementCountsAgainstTheRateLimit() throws {
        let d = try Self.harness(burst: 10)
        defer { d.stop() }
        let tooBig = try d.request("POST", "/v1/oprf/evaluate", body: Self.batch(Array(repeating: Self.v1.0, count: 11)))
        #expect(tooBig.status == 400)
        #expect(tooBig.errorCode == "invalid_value")
        #expect(tooBig.body.contains("at most 10 elements"), "\(tooBig.body)")
        // 9 tokens left.
        #expect(try d.request("POST", "/v1/oprf/evaluate", body: Self.batch(Array(repeating: Self.v1.0, count: 4))).status == 200)
        // 5 left: a batch of 6 is refused whole (and takes its request's token: 4 left).
        let refused = try d.request("POST", "/v1/oprf/evaluate", body: Self.batch(Array(repeating: Self.v2.0, count: 6)))
        #expect(refused.status == 429)
        #expect(refused.errorCode == "rate_limited")
        #expect(try d.request("POST", "/v1/oprf/evaluate", body: Self.batch(Array(repeating: Self.v2.0, count: 4))).status == 200)
        #expect(try d.request("POST", "/v1/oprf/evaluate", body: "{\"blindedElement\":\"\(Self.v1.0)\"}").status == 429)
        // The second refusal falls in the first one's summary interval: it is counted into one
        // summary entry when the interval ends (docs/ROBUSTNESS.md §Resource limits), not
        // written on its own.
        #expect(
            try Self.audit(d).filter { $0.action == "oprf-evaluate" }.map(\.result)
                == ["ok (4 elements)", "rate_limited", "ok (4 elements)"])
    }
}
