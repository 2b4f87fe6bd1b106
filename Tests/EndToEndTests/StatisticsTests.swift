import AnonregTestSupport
import Foundation
import Testing

/// `GET /v1/stats` and `anonreg stats` through the real daemon: exact cells for a known event
/// set, suppression, access by role, bad queries changing nothing, and stored noisy releases
/// with a privacy budget.
@Suite(.serialized) struct StatisticsTests {
    static let clinicUID: UInt32 = 65534
    static let statisticianUID: UInt32 = 65533

    /// The daemon's current month and day (host local time, like its DayClock).
    static var today: String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return String(format: "%04d-%02d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
    }
    static var month: String { String(today.prefix(7)) }

    static func harness(privacy: Bool = false) throws -> DaemonHarness {
        try DaemonHarness(configure: { text in
            var text = text.replacingOccurrences(of: "statistician_uids = []", with: "statistician_uids = [\(statisticianUID)]")
            if privacy {
                text = text.replacingOccurrences(of: "privacy = false", with: "privacy = true")
                    .replacingOccurrences(of: "monthly_budget = 2.0", with: "monthly_budget = 1.0")
            }
            return text + "\n[clinics.north]\nuids = [\(clinicUID)]\ngids = []\n"
        })
    }

    func enrol(_ h: DaemonHarness, category: String = "dependence", uid: UInt32? = nil, linkage: String? = nil) throws {
        let reply = try h.request(
            "POST", "/v1/subjects",
            body: DaemonHarness.enrolBody(
                givenOn: Self.today, enrolledOn: Self.today, category: category, linkage: linkage), uid: uid)
        #expect(reply.status == 201, "\(reply.body)")
    }

    func table(_ reply: DaemonHarness.Reply, _ metric: String, _ category: String) -> [String: Any]? {
        (reply.json?["tables"] as? [[String: Any]])?.first { $0["metric"] as? String == metric && $0["category"] as? String == category }
    }

    func shown(_ cell: Any?) -> String? { (cell as? [String: Any])?["shown"] as? String }

    @Test func knownEventsGiveTheExpectedCellsForAdminsAndStatisticiansOnly() throws {
        let h = try Self.harness()
        try h.start()
        defer { h.stop() }
        let m = Self.month
        for i in 0..<7 { try enrol(h, linkage: String(repeating: String(format: "%02x", i), count: 64)) }
        for _ in 0..<6 { try enrol(h, uid: Self.clinicUID) }
        for _ in 0..<2 { try enrol(h, category: "harmful-use") }

        let reply = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&byClinic=true", uid: Self.statisticianUID)
        #expect(reply.status == 200, "\(reply.body)")
        let enrolled = try #require(table(reply, "enrolled", "dependence"))
        #expect(enrolled["columns"] as? [String] == ["local", "north"])
        let row = try #require((enrolled["rows"] as? [[String: Any]])?.first)
        #expect((row["cells"] as? [Any])?.map { shown($0) } == ["7", "6"])
        #expect(shown(row["total"]) == "13")
        #expect(shown(enrolled["total"]) == "13")
        // Two harmful-use enrolments: a small cell, shown as <5 with its total.
        let harmful = try #require(table(reply, "enrolled", "harmful-use"))
        let harmfulRow = try #require((harmful["rows"] as? [[String: Any]])?.first)
        #expect((harmfulRow["cells"] as? [Any])?.map { shown($0) } == ["<5", "0"])
        #expect(shown(harmfulRow["total"]) == "<5")
        #expect(!reply.body.contains("\"value\":2"))
        // Unique persons: the current month is open, so nothing is released for it.
        let unique = try #require(table(reply, "unique-persons", "dependence"))
        #expect((unique["rows"] as? [Any])?.isEmpty == true)
        #expect(reply.json?["closedThrough"] as? String != m)

        // A statistician may read; a clinic may not (invariant 2), and neither may the admin uid
        // that `anonreg init` also makes clinic `local` (issue 14 §4).
        #expect(try h.request("GET", "/v1/stats?from=\(m)&to=\(m)", uid: Self.statisticianUID).status == 200)
        let clinic = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)", uid: Self.clinicUID)
        #expect(clinic.status == 403)
        #expect(clinic.errorCode == "forbidden")
        let adminAndClinic = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)")
        #expect(adminAndClinic.status == 403, "\(adminAndClinic.body)")
        #expect(adminAndClinic.body.contains("clinic local") && !adminAndClinic.body.contains("\"tables\""))

        // CSV.
        let csv = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&format=csv", uid: Self.statisticianUID)
        #expect(csv.status == 200)
        #expect(csv.body.contains("enrolled,dependence,\(m),total,13"))

        // Audited like every other route.
        let audited = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                h.stateDir + "/registry.sqlite",
                "SELECT count(*) FROM audit_entry WHERE action = 'read-statistics'",
            ]
        ).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Int(audited) ?? 0 >= 4)

        // The CLI as the statistician: human table, and an SVG chart written to a file.
        let text = try statistician(["stats", "--socket", h.socket, "--from", m, "--to", m])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("Category dependence") && text.stdout.contains("13"))
        #expect(text.stdout.contains("Differential privacy: off"))
        // The statistician writes where it may: a directory of its own.
        _ = try Binaries.runExecutable("/usr/bin/install", ["-m", "0700", "-o", "\(Self.statisticianUID)", "-d", h.tmp.sub("out")])
        let svg = try statistician([
            "stats", "--socket", h.socket, "--from", m, "--to", m, "--format", "svg", "--output", h.tmp.sub("out/chart.svg"),
        ])
        #expect(svg.status == 0, "\(svg.stderr)")
        let chart = try String(contentsOfFile: h.tmp.sub("out/chart.svg"), encoding: .utf8)
        #expect(chart.contains("<svg") && chart.contains("enrolments") && chart.contains("completions"))
        // A clinic uid running the CLI is refused by policy (exit 3).
        let refused = try Binaries.runExecutable(
            "/usr/bin/setpriv",
            [
                "--reuid=\(Self.clinicUID)", "--regid=0", "--clear-groups",
                Binaries.path("anonreg"), "stats", "--socket", h.socket, "--from", m, "--to", m,
            ])
        #expect(refused.status == 3, "\(refused.stderr)")
        // So is the admin uid that is also clinic local; the refusal points to the offline path.
        let admin = try Binaries.run("anonreg", ["stats", "--socket", h.socket, "--from", m, "--to", m])
        #expect(admin.status == 3, "\(admin.stderr)")
        #expect(admin.stderr.contains("anonreg stats --state-dir"))
    }

    func statistician(_ arguments: [String]) throws -> Binaries.Result {
        try Binaries.runExecutable(
            "/usr/bin/setpriv",
            [
                "--reuid=\(Self.statisticianUID)", "--regid=0", "--clear-groups",
                Binaries.path("anonreg"),
            ] + arguments)
    }

    /// `anonreg init`'s single user (admin and clinic local) reads statistics offline, on the
    /// stopped state directory, through the daemon's own release code: the same cells, an audit
    /// entry, and a refusal while the daemon runs.
    @Test func theSingleUserReadsStatisticsOfflineOnly() throws {
        let h = try Self.harness(privacy: true)
        try h.start()
        let m = Self.month
        for _ in 0..<8 { try enrol(h) }
        let running = try Binaries.run("anonreg", ["stats", "--state-dir", h.stateDir, "--from", m, "--to", m])
        #expect(running.status == 3, "\(running.stderr)")
        #expect(running.stderr.contains("running anonregd"))
        #expect(h.stop() == 0)
        let offline = try Binaries.run("anonreg", ["stats", "--state-dir", h.stateDir, "--from", m, "--to", m, "--json"])
        #expect(offline.status == 0, "\(offline.stderr)")
        // The release was stored and charged like the daemon's: asking the daemon the same query
        // later returns it byte for byte.
        try h.start()
        defer { h.stop() }
        let online = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)", uid: Self.statisticianUID)
        #expect(online.status == 200)
        #expect(online.body + "\n" == offline.stdout)
        let audited = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                h.stateDir + "/registry.sqlite",
                "SELECT count(*) FROM audit_entry WHERE action = 'read-statistics' AND actor = 'admin uid 0 offline'",
            ]
        ).stdout
        #expect(audited.trimmingCharacters(in: .whitespacesAndNewlines) == "1")
    }

    @Test func badQueriesGetAClearErrorAndChangeNothing() throws {
        let h = try Self.harness(privacy: true)
        try h.start()
        defer { h.stop() }
        try enrol(h)
        let m = Self.month
        let before = try h.registryDump() + (try stateTables(h))
        for (query, code) in [
            ("from=\(m)", "missing_field"), ("from=2026-13&to=\(m)", "invalid_month"),
            ("from=\(m)&to=2020-01", "invalid_value"), ("from=\(m)&to=\(m)&format=svg", "invalid_value"),
            ("from=\(m)&to=\(m)&clinic=local", "unknown_field"), ("from=\(m)&to=9999-12", "invalid_value"),
            ("from=\(m)&to=\(m)&category=gambling", "invalid_value"),
        ] {
            let reply = try h.request("GET", "/v1/stats?" + query, uid: Self.statisticianUID)
            #expect(reply.status == 400, "\(query): \(reply.body)")
            #expect(reply.errorCode == code, "\(query): \(reply.body)")
        }
        #expect(try h.registryDump() + (try stateTables(h)) == before)
    }

    func stateTables(_ h: DaemonHarness) throws -> String {
        try Binaries.runExecutable(
            "/usr/bin/sqlite3", [h.stateDir + "/registry.sqlite", ".dump stats_release privacy_budget unique_person_seen"]
        ).stdout
    }

    @Test func noisyReleasesAreStoredAndRefusedPastTheBudget() throws {
        let h = try Self.harness(privacy: true)
        try h.start()
        defer { h.stop() }
        for _ in 0..<8 { try enrol(h) }
        let m = Self.month
        let first = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)", uid: Self.statisticianUID)
        #expect(first.status == 200, "\(first.body)")
        #expect((first.json?["privacy"] as? [String: Any])?["epsilon"] as? String == "0.5")
        // The same query returns the stored release, byte for byte, and charges nothing more.
        let again = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)", uid: Self.statisticianUID)
        #expect(again.body == first.body)
        // A second query spends the rest of the month's budget (1.0 = two releases of 0.5) ...
        #expect(try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&byClinic=true", uid: Self.statisticianUID).status == 200)
        // ... and a third is refused, with nothing stored.
        let refused = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&category=dependence", uid: Self.statisticianUID)
        #expect(refused.status == 403)
        #expect(refused.errorCode == "privacy_budget_spent")
        #expect(try stateTables(h).components(separatedBy: "INSERT INTO stats_release").count - 1 == 2)
        // Stored releases stay readable, also after a restart.
        h.stop()
        try h.start()
        #expect(try h.request("GET", "/v1/stats?from=\(m)&to=\(m)", uid: Self.statisticianUID).body == first.body)
        let csv = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&format=csv", uid: Self.statisticianUID)
        #expect(csv.status == 200 && csv.body.hasPrefix("metric,category,month,clinic,value"))
    }

    static var previousMonth: String {
        let parts = month.split(separator: "-").compactMap { Int($0) }
        return parts[1] == 1 ? String(format: "%04d-12", parts[0] - 1) : String(format: "%04d-%02d", parts[0], parts[1] - 1)
    }

    /// Issue 14 §5: with differential privacy on, `anonreg stats` without --to asks for closed
    /// months only, so no budget goes to the open month (whose figures still change).
    @Test func withPrivacyTheDefaultRangeSpendsNothingOnTheOpenMonth() throws {
        let h = try Self.harness(privacy: true)
        try h.start()
        defer { h.stop() }
        for _ in 0..<6 { try enrol(h) }
        let text = try statistician(["stats", "--socket", h.socket])
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("Differential privacy: on (ε 0.5 per release, monthly budget 1)"), "\(text.stdout)")
        let tables = try stateTables(h)
        #expect(tables.contains("to=\(Self.previousMonth)&"), "the release did not end with the last closed month: \(tables)")
        #expect(!tables.contains("'\(Self.month)'"), "the open month was charged: \(tables)")
        // An explicit --to is the statistician's choice and is honoured.
        let explicit = try statistician(["stats", "--socket", h.socket, "--from", Self.month, "--to", Self.month, "--json"])
        #expect(explicit.status == 0, "\(explicit.stderr)")
        #expect(try stateTables(h).contains("'\(Self.month)'"))
    }

    func auditResults(_ h: DaemonHarness, _ action: String) throws -> [String] {
        try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                h.stateDir + "/registry.sqlite",
                "SELECT actor || ': ' || result FROM audit_entry WHERE action = '\(action)' ORDER BY seq",
            ]
        ).stdout
            .split(separator: "\n").map(String.init)
    }

    func reload(_ h: DaemonHarness, _ edit: (String) -> String, until expected: Int) throws {
        let text = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try edit(text).write(toFile: h.configPath, atomically: true, encoding: .utf8)
        kill(try #require(h.pid), SIGHUP)
        for _ in 0..<200 where try auditResults(h, "privacy-settings").count < expected { usleep(20_000) }
    }

    /// The first settings a registry records: the defaults silently (a configuration that says
    /// nothing decides nothing), anything else as an audited decision from the first start.
    @Test func defaultSettingsAreRecordedAndOwnSettingsAuditedFromTheFirstStart() throws {
        let h = try Self.harness()
        try h.start()
        #expect(try auditResults(h, "privacy-settings").isEmpty)
        let status = try h.request("GET", "/v1/stats/privacy", uid: Self.statisticianUID)
        #expect(status.status == 200, "\(status.body)")
        #expect((status.json?["changes"] as? [Any])?.count == 1, "the defaults are in the history: \(status.body)")
        #expect(h.stop() == 0)
        let text = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "privacy = false", with: "privacy = true").write(
            toFile: h.configPath, atomically: true, encoding: .utf8)
        try h.start()
        defer { h.stop() }
        #expect(try auditResults(h, "privacy-settings") == ["system start: privacy=on epsilon=0.5 monthly_budget=2"])
    }

    /// Issue 21 §3: changing the budget, ε or `privacy` is audited at the next reload or start
    /// and shown by `anonreg stats`; raising the budget never lets a month spend more than the
    /// budget configured when its first noisy figure was released; turning privacy off never
    /// releases exact figures for a month that had noisy ones.
    @Test func privacySettingsAreAReleaseDecision() throws {
        let h = try Self.harness(privacy: true)
        try h.start()
        defer { h.stop() }
        for _ in 0..<8 { try enrol(h) }
        let m = Self.month
        #expect(try auditResults(h, "privacy-settings") == ["system start: privacy=on epsilon=0.5 monthly_budget=1"])
        // Two releases spend the month's budget of 1.0.
        #expect(try h.request("GET", "/v1/stats?from=\(m)&to=\(m)", uid: Self.statisticianUID).status == 200)
        #expect(try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&byClinic=true", uid: Self.statisticianUID).status == 200)

        // The admin raises the budget to 4 and reloads: audited, and the month stays at 1.
        try reload(h, { $0.replacingOccurrences(of: "monthly_budget = 1.0", with: "monthly_budget = 4.0") }, until: 2)
        #expect(try auditResults(h, "privacy-settings").last == "system reload: privacy=on epsilon=0.5 monthly_budget=4")
        let third = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&category=dependence", uid: Self.statisticianUID)
        #expect(
            third.status == 403 && third.errorCode == "privacy_budget_spent", "raising the budget let the month spend more: \(third.body)")
        #expect(third.body.contains("the budget configured when its first figure was released"))
        // A month with no release yet gets the new budget.
        #expect(
            try h.request("GET", "/v1/stats?from=\(Self.previousMonth)&to=\(Self.previousMonth)", uid: Self.statisticianUID).status == 200)

        // Lowering ε is a change too; and `anonreg stats` shows the history and the budgets.
        try reload(h, { $0.replacingOccurrences(of: "epsilon = 0.5", with: "epsilon = 0.25") }, until: 3)
        let shown = try statistician(["stats", "--socket", h.socket, "--from", m, "--to", m, "--category", "harmful-use"])
        #expect(shown.status == 3, "the month is spent: \(shown.stdout) \(shown.stderr)")
        // The stored release of a query asked before is still returned as it was.
        #expect(try statistician(["stats", "--socket", h.socket, "--from", m, "--to", m]).status == 0)
        let status = try h.request("GET", "/v1/stats/privacy", uid: Self.statisticianUID)
        #expect(status.status == 200, "\(status.body)")
        let months = status.json?["months"] as? [[String: Any]] ?? []
        #expect(
            months.contains { $0["month"] as? String == m && $0["spent"] as? String == "1" && $0["cap"] as? String == "1" },
            "\(status.body)")
        #expect((status.json?["changes"] as? [Any])?.count == 3)
        let table = try statistician(["stats", "--socket", h.socket, "--from", Self.previousMonth, "--to", Self.previousMonth])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("Budget spent: \(Self.previousMonth) 0.5 of 4"), "\(table.stdout)")
        #expect(table.stdout.contains("privacy on, epsilon 0.25, monthly budget 4"), "\(table.stdout)")
        #expect(table.stdout.contains("privacy on, epsilon 0.5, monthly budget 1"), "\(table.stdout)")

        // Privacy off, restarted: audited at start; exact figures for a month that had noisy
        // releases would undo their noise, so they are refused.
        h.stop()
        let text = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "privacy = true", with: "privacy = false").write(
            toFile: h.configPath, atomically: true, encoding: .utf8)
        try h.start()
        #expect(try auditResults(h, "privacy-settings").last == "system start: privacy=off epsilon=0.25 monthly_budget=4")
        let exact = try h.request("GET", "/v1/stats?from=\(m)&to=\(m)&byClinic=true", uid: Self.statisticianUID)
        #expect(exact.status == 403 && exact.errorCode == "privacy_budget_spent", "exact figures for a noisy month: \(exact.body)")
        #expect(!exact.body.contains("tables"))
        // A restart with unchanged settings records nothing new.
        h.stop()
        try h.start()
        #expect(try auditResults(h, "privacy-settings").count == 4)
    }
}
