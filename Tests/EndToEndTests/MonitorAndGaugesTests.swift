import AnonregTestSupport
import Foundation
import Testing

/// Issue 22 §4: the monitor role reads `/metrics` and `/v1/health` and nothing else, and the
/// gauges an admin alerts on (docs/OPERATIONS.md §Metrics, docs/alerts.yml) say what happened.
@Suite(.serialized) struct MonitorAndGaugesTests {
    static let monitorUID: UInt32 = 4242

    /// Every operation docs/openapi.yaml lists, with `{case}` filled in.
    static func documentedOperations() throws -> [(method: String, path: String)] {
        let text = try String(contentsOfFile: DaemonOperationsTests.repository + "/docs/openapi.yaml", encoding: .utf8)
        var out: [(String, String)] = []
        var path: String? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let p = path,
                let method = ["get", "post", "put", "delete", "patch"].first(where: { line == "    \($0):" })
            {
                out.append((method.uppercased(), p.replacingOccurrences(of: "{case}", with: "case_AAAAAAAAAAAAAAAAAAAAAAAAAA")))
            } else if !line.hasPrefix(" "), !line.isEmpty {
                path = nil
            }
        }
        return out
    }

    static func monitorHarness() throws -> DaemonHarness {
        try DaemonHarness { $0.replacingOccurrences(of: "monitor_uids = []", with: "monitor_uids = [\(monitorUID)]") }
    }

    /// A monitor is refused (403 `forbidden`) on every route but the two, before any handler runs:
    /// the attempts are audited as refused and no registry data changes.
    @Test func aMonitorReadsMetricsAndHealthOnly() throws {
        let d = try Self.monitorHarness()
        try d.start()
        defer { d.stop() }
        let operations = try Self.documentedOperations()
        #expect(operations.count >= 20, "openapi.yaml lists the routes")
        let entries = try d.auditEntryCount()
        let data = try d.registryDump()
        for (method, path) in operations {
            let body: String? = method == "POST" ? "{}" : nil
            let reply = try d.request(method, path, body: body, uid: Self.monitorUID, gid: 0)
            if (method, path) == ("GET", "/metrics") || (method, path) == ("GET", "/v1/health") {
                #expect(reply.status == 200, "\(method) \(path): \(reply.status) \(reply.body)")
            } else {
                #expect(reply.status == 403, "\(method) \(path): \(reply.status) \(reply.body)")
                #expect(reply.errorCode == "forbidden", "\(method) \(path): \(reply.body)")
            }
        }
        // Refused attempts on registry routes are audited as such, and nothing else is.
        let results = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                d.stateDir + "/registry.sqlite",
                "SELECT DISTINCT result FROM audit_entry WHERE seq > \(entries)",
            ]
        ).stdout.split(separator: "\n").map(String.init)
        #expect(results == ["forbidden"], "\(results)")
        #expect(try d.registryDump() == data)
        // An unknown peer still gets unknown_peer; a clinic still may not read the metrics.
        #expect(try d.request("GET", "/metrics", uid: 4343, gid: 0).errorCode == "unknown_peer")
        let clinicOnly = try DaemonHarness {
            $0.replacingOccurrences(of: "[rate_limits]", with: "[clinics.north]\nuids = [4300]\n\n[rate_limits]")
        }
        try clinicOnly.start()
        defer { clinicOnly.stop() }
        #expect(try clinicOnly.request("GET", "/metrics", uid: 4300, gid: 0).status == 403)
    }

    static func gauge(_ name: String, in metrics: String) -> Double? {
        for line in metrics.split(separator: "\n") where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
            return line.split(separator: " ").last.flatMap { Double($0) }
        }
        return nil
    }

    /// The five gauges (and the limit, build and start gauges the alerts use) follow what
    /// happens: the start-up sweep, an erasure, a backup (also across a restart), a rotation, the
    /// audit log's unsigned tail.
    @Test func theGaugesFollowWhatHappens() throws {
        let d = try Self.monitorHarness()
        let started = Date().timeIntervalSince1970
        try d.start()
        var running = true
        defer { if running { d.stop() } }
        func metrics() throws -> String {
            let r = try d.request("GET", "/metrics", uid: Self.monitorUID, gid: 0)
            #expect(r.status == 200)
            return r.body
        }
        var sweep: Double? = nil
        for _ in 0..<100 {
            sweep = Self.gauge("anonreg_sweep_last_success_timestamp_seconds", in: try metrics())
            if sweep != nil { break }
            usleep(50_000)
        }
        var m = try metrics()
        #expect(sweep.map { $0 >= started - 1 } == true, "the start-up sweep is recorded")
        #expect(Self.gauge("anonreg_backup_last_success_timestamp_seconds", in: m) == nil, "no backup yet")
        let kek1 = try #require(Self.gauge("anonreg_kek_primary_created_timestamp_seconds", in: m))
        #expect(abs(kek1 - started) < 120)
        #expect(Self.gauge("anonreg_erasure_ledger_entries", in: m) == 0)
        #expect(Self.gauge("anonreg_audit_unsigned_tail_limit_entries", in: m) == 1000)
        #expect(Self.gauge("anonreg_start_time_seconds", in: m).map { $0 >= started - 1 } == true)
        #expect(m.contains("anonreg_build_info{"))

        // An erasure adds a ledger entry; the tail equals what `audit verify` reports.
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let handle = try #require(enrol.string("case"))
        #expect(try d.request("POST", "/v1/cases/\(handle)/withdraw").status == 200)
        m = try metrics()
        #expect(Self.gauge("anonreg_erasure_ledger_entries", in: m) == 1)
        let verify = try #require(try d.request("GET", "/v1/admin/audit/verify").json)
        let tail = try #require(Self.gauge("anonreg_audit_unsigned_tail_entries", in: m))
        // The verify request itself may add its own entry after the scrape.
        #expect(tail >= 1 && Int(tail) <= (verify["unsignedTail"] as? Int ?? -1), "tail \(tail), verify \(verify)")

        // A backup, then a rotation.
        let file = d.tmp.sub("gauges.anrgbak")
        let backup = try d.anonreg(["backup", "create", file])
        #expect(backup.status == 0, "\(backup.stderr)")
        // The daemon records the gauge after the stream's last byte is written, which the
        // client may have read (and `backup create` exited on) a moment before: poll briefly.
        var recorded: Double? = nil
        for _ in 0..<100 where recorded == nil {
            recorded = Self.gauge("anonreg_backup_last_success_timestamp_seconds", in: try metrics())
            if recorded == nil { usleep(100_000) }
        }
        let backedUp = try #require(recorded)
        #expect(backedUp >= started - 1)
        sleep(1)
        #expect(try d.anonreg(["keys", "rotate"]).status == 0)
        let kek2 = try #require(Self.gauge("anonreg_kek_primary_created_timestamp_seconds", in: try metrics()))
        #expect(kek2 > kek1)

        // After a restart the backup time comes back from the audit log, not 0.
        d.stop()
        running = false
        try d.start()
        running = true
        let again = try #require(Self.gauge("anonreg_backup_last_success_timestamp_seconds", in: try metrics()))
        #expect(abs(again - backedUp) <= 2, "backup gauge after restart: \(again), before \(backedUp)")
    }

    /// docs/alerts.yml names only metrics the daemon exports.
    @Test func theAlertRulesUseExportedMetrics() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        _ = try d.request("GET", "/v1/health")
        let exported = try d.request("GET", "/metrics").body
        let rules = try String(contentsOfFile: DaemonOperationsTests.repository + "/docs/alerts.yml", encoding: .utf8)
        let regex = try NSRegularExpression(pattern: "anonreg_[a-z_]+")
        let names = Set(
            regex.matches(in: rules, range: NSRange(rules.startIndex..., in: rules)).compactMap {
                Range($0.range, in: rules).map { String(rules[$0]) }
            })
        #expect(names.count >= 6)
        for name in names where !name.hasPrefix("anonreg_backup_last") && name != "anonreg_storage_full_refused_total" {
            // Metric names, with a histogram's suffixes; the backup gauge appears after a backup.
            #expect(exported.contains(name), "docs/alerts.yml uses \(name), which /metrics does not export")
        }
    }
}
