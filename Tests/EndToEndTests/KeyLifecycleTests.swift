import AnonregTestSupport
import Foundation
import Testing

/// KEK rotation, rewrap, retire and destroy through `anonreg keys`, with the daemon serving.
@Suite(.serialized) struct KeyLifecycleTests {
    @Test func rotateRewrapRetireDestroy() async throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let anonreg = d.anonreg

        var handles: [String] = []
        for _ in 0..<150 {
            let r = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
            handles.append(try #require(r.string("case")))
        }
        let rotated = try anonreg(["keys", "rotate"])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stdout.contains("primary: 2"))
        // Retiring version 1 while subjects use it is refused, names the count, changes nothing.
        let refused = try anonreg(["keys", "retire", "1"])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("150 subject(s) still use it"))
        #expect(try String(contentsOfFile: d.stateDir + "/keys/keyring.json", encoding: .utf8).contains("\"status\" : \"active\""))

        // Rewrap in small batches while another task keeps enrolling and reading.
        let harness = d
        let load = Task.detached {
            var made: [String] = []
            for _ in 0..<60 {
                if let r = try? harness.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()), let h = r.string("case") {
                    made.append(h)
                }
                _ = try? harness.request("GET", "/v1/due")
            }
            return made
        }
        let rewrap = try anonreg(["keys", "rewrap", "--batch-size", "20"])
        #expect(rewrap.status == 0, "\(rewrap.stderr)")
        #expect(rewrap.stdout.split(separator: "\n").last?.contains("\"remaining\":0") == true)
        handles += await load.value

        let status = try anonreg(["keys", "status", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        let versions = try #require(json?["versions"] as? [[String: Any]])
        #expect(versions.first?["subjects"] as? Int == 0)
        #expect(versions.last?["subjects"] as? Int == handles.count)

        #expect(try anonreg(["keys", "retire", "1"]).status == 0)
        let notConfirmed = try anonreg(["keys", "destroy", "1"])
        #expect(notConfirmed.status == 3, "no typed confirmation on stdin")
        #expect(FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-1.key"))
        #expect(try anonreg(["keys", "destroy", "1", "--yes"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-1.key"))
        // Every subject still reads, after a restart too.
        #expect(d.stop() == 0)
        try d.start()
        for handle in handles {
            #expect(try d.request("GET", "/v1/cases/\(handle)").status == 200)
        }
        #expect(try anonreg(["keys", "destroy", "2", "--yes"]).status == 3, "the primary cannot be destroyed")
    }

    /// `anonreg keys stage`, then `keys rotate`: the staged key wraps nothing until the rotation
    /// promotes it, as the same file; a second stage is refused and changes nothing.
    @Test func stageThenRotatePromotesTheStagedKey() async throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let anonreg = d.anonreg
        let first = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        #expect(first.status == 201)

        // Bad input first: a body (the route takes none) and an unknown peer change nothing.
        let keyringBefore = try Data(contentsOf: URL(fileURLWithPath: d.stateDir + "/keys/keyring.json"))
        let withBody = try d.request("POST", "/v1/admin/keys/stage", body: #"{"version":2}"#)
        #expect(withBody.status == 400 && withBody.body.contains(#""code":"unknown_field""#), "\(withBody.body)")
        let stranger = try d.request("POST", "/v1/admin/keys/stage", uid: 65534, gid: 0)
        #expect(stranger.status == 403 && stranger.body.contains(#""code":"unknown_peer""#), "\(stranger.body)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: d.stateDir + "/keys/keyring.json")) == keyringBefore)
        #expect(!FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-2.key"))

        let staged = try anonreg(["keys", "stage", "--json"])
        #expect(staged.status == 0, "\(staged.stderr)")
        let stagedStatus = try #require(try JSONSerialization.jsonObject(with: Data(staged.stdout.utf8)) as? [String: Any])
        #expect(stagedStatus["primary"] as? Int == 1)
        let versions = try #require(stagedStatus["versions"] as? [[String: Any]])
        #expect(versions.map { $0["status"] as? String } == ["primary", "staged"])
        let stagedFile = try Data(contentsOf: URL(fileURLWithPath: d.stateDir + "/keys/kek-2.key"))

        // Enrolments go on under version 1.
        #expect(try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()).status == 201)
        let keyring = d.stateDir + "/keys/keyring.json"
        let before = try Data(contentsOf: URL(fileURLWithPath: keyring))
        let again = try d.request("POST", "/v1/admin/keys/stage")
        #expect(again.status == 409)
        #expect(again.body.contains(#""code":"kek_transition_refused""#), "\(again.body)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: keyring)) == before)
        #expect(try d.request("POST", "/v1/admin/keys/retire", body: #"{"version":2}"#).status == 409)

        let rotated = try anonreg(["keys", "rotate", "--json"])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let rotatedStatus = try #require(try JSONSerialization.jsonObject(with: Data(rotated.stdout.utf8)) as? [String: Any])
        #expect(rotatedStatus["primary"] as? Int == 2)
        let after = try #require(rotatedStatus["versions"] as? [[String: Any]])
        #expect(after.map { $0["status"] as? String } == ["active", "primary"])
        #expect(after.map { $0["subjects"] as? Int } == [2, 0])
        #expect(after.last?["promotedAt"] as? String != nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: d.stateDir + "/keys/kek-2.key")) == stagedFile)
        #expect(!FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-3.key"))
        #expect(try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()).status == 201)
        let status = try anonreg(["keys", "status", "--json"])
        let final = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect((final["versions"] as? [[String: Any]])?.map { $0["subjects"] as? Int } == [2, 1])
        // The audit log names both changes.
        let audit = try d.request("GET", "/v1/admin/audit/export")
        #expect(audit.body.contains("stage-kek") && audit.body.contains("rotate-kek"))
    }

    /// Node B's side of the rollout (docs/OPERATIONS.md §PostgreSQL and several nodes, "KEK
    /// rotation"): another node's staged `kek-2.key` and `keyring.json` copied into this
    /// daemon's keys directory are taken up on SIGHUP, without a restart; a keyring.json of
    /// another keyring is refused, logged, and changes nothing.
    @Test func aVersionStagedElsewhereIsTakenUpOnSIGHUP() async throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let anonreg = d.anonreg
        let keys = d.stateDir + "/keys"
        let elsewhere = TemporaryDirectory()
        func cp(_ from: [String], _ to: String) throws {
            let result = try Binaries.runExecutable("/bin/cp", ["-a"] + from + [to])
            #expect(result.status == 0, "\(result.stderr)")
        }
        func statuses() throws -> [String?] {
            let status = try anonreg(["keys", "status", "--json"])
            let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            return (json?["versions"] as? [[String: Any]])?.map { $0["status"] as? String } ?? []
        }
        // "Another node": this one stages, its files are kept aside, and it is put back as it
        // was before (version 1 only) and restarted.
        try cp([keys + "/keyring.json"], elsewhere.sub("keyring-before.json"))
        #expect(try anonreg(["keys", "stage"]).status == 0)
        try cp([keys + "/kek-2.key", keys + "/keyring.json"], elsewhere.path + "/")
        #expect(d.stop() == 0)
        try cp([elsewhere.sub("keyring-before.json")], keys + "/keyring.json")
        #expect(unlink(keys + "/kek-2.key") == 0)
        try d.start()
        #expect(try statuses() == ["primary"])

        try cp([elsewhere.sub("kek-2.key"), elsewhere.sub("keyring.json")], keys + "/")
        kill(try #require(d.pid), SIGHUP)
        var seen: [String?] = []
        for _ in 0..<100 {
            seen = try statuses()
            if seen == ["primary", "staged"] { break }
            usleep(50_000)
        }
        #expect(seen == ["primary", "staged"])
        #expect(d.log.text.contains("keyring reloaded"))
        let rotated = try anonreg(["keys", "rotate"])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: keys + "/kek-2.key"))
                == Data(contentsOf: URL(fileURLWithPath: elsewhere.sub("kek-2.key"))))
        #expect(try statuses() == ["active", "primary"])

        // Another keyring's manifest: refused on SIGHUP, logged, and the daemon goes on with its own.
        let other = TemporaryDirectory()
        let initOther = try Binaries.run("anonreg", ["init", "--state-dir", other.sub("state")])
        #expect(initOther.status == 0, "\(initOther.stderr)")
        try cp([keys + "/keyring.json"], elsewhere.sub("keyring-mine.json"))
        try cp([other.sub("state/keys/keyring.json")], keys + "/keyring.json")
        kill(try #require(d.pid), SIGHUP)
        var logged = false
        for _ in 0..<100 {
            logged = d.log.text.contains("the keys directory was not reloaded")
            if logged { break }
            usleep(50_000)
        }
        #expect(logged, "\(d.log.text.suffix(2000))")
        #expect(try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()).status == 201)
        try cp([elsewhere.sub("keyring-mine.json")], keys + "/keyring.json")
        #expect(try statuses() == ["active", "primary"])
    }

    /// Issue 9's acceptance run: 5,000 subjects with check-ups; `keys rotate --rewrap`
    /// while a second process keeps enrolling and reading; SIGKILL of the daemon halfway through
    /// the rewrap; restart and resume; every subject reads back; retire and destroy the old
    /// version; everything still reads and the old key file is gone.
    @Test func rewrapOf5000SubjectsSurvivesSIGKILLUnderLoad() async throws {
        let started = Date()
        let d = try DaemonHarness(configure: DaemonHarness.loadTestBudgets)
        try d.start()
        defer { d.stop(signal: SIGKILL) }
        let anonreg = d.anonreg

        // 1. 5,000 subjects, each with one check-up carrying its own note, over 4 connections.
        let total = 5_000
        let handles: [String] = try d.parallel(total, workers: 8) { client, i in
            try DaemonHarness.enrolWithCheckup(client, note: "subject-\(i)")
        }
        let enrolled = Date()
        print("e2e: enrolled \(total) subjects with check-ups in \(String(format: "%.1f", enrolled.timeIntervalSince(started))) s")

        // 2. A second process keeps enrolling and reading through everything that follows.
        let loadOut = d.tmp.sub("load.out")
        let body = d.tmp.sub("load-body.json")
        try DaemonHarness.enrolBody().write(toFile: body, atomically: true, encoding: .utf8)
        let script = """
            while :; do
              curl -s --max-time 10 --unix-socket '\(d.socket)' -X POST -H 'Content-Type: application/json' --data-binary @'\(body)' http://anonreg/v1/subjects >> '\(loadOut)'
              echo >> '\(loadOut)'
              curl -s --max-time 10 --unix-socket '\(d.socket)' http://anonreg/v1/due > /dev/null
            done
            """
        let load = try Spawned.start("/bin/sh", ["-c", script])
        var loadRunning = true
        defer {
            if loadRunning {
                load.signal(SIGKILL)
                load.wait()
            }
        }

        // 3. `keys rotate --rewrap`, rewrapping in small batches (JSON progress lines on a
        // non-terminal); SIGKILL the daemon once half the data keys have moved.
        let progress = d.tmp.sub("rewrap.out")
        let rewrap = try Spawned.start(
            Binaries.path("anonreg"), ["keys", "rotate", "--rewrap", "--batch-size", "10"], environment: d.cliEnvironment,
            stdout: progress, stderr: d.tmp.sub("rewrap.err"))
        var killedAt = 0
        while killedAt == 0 {
            let lines = ((try? String(contentsOfFile: progress, encoding: .utf8)) ?? "").split(separator: "\n")
            if let last = lines.last, let json = try? JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any],
                let done = json["rewrapped"] as? Int, done >= total / 2
            {
                #expect(d.stop(signal: SIGKILL) == 128 + SIGKILL)
                killedAt = done
            } else if rewrap.hasExited() != nil {
                Issue.record("the rewrap finished before the daemon could be killed halfway: \(lines.last ?? "")")
                return
            }
            usleep(1_000)
        }
        let cliStatus = rewrap.wait()
        #expect(cliStatus == 4 || cliStatus == 1, "the interrupted rewrap CLI fails (status \(cliStatus))")
        let onOld =
            Int(
                try Binaries.runExecutable(
                    "/usr/bin/sqlite3", [d.stateDir + "/registry.sqlite", "SELECT count(*) FROM subject WHERE kek_version = 1"]
                )
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(onOld > 0 && onOld < total, "killed halfway: \(onOld) data keys still under version 1 after \(killedAt) rewrapped")

        // Restart and resume.
        try d.start()
        let resumed = try anonreg(["keys", "rewrap", "--batch-size", "500"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.split(separator: "\n").last?.contains("\"remaining\":0") == true)
        load.signal(SIGTERM)
        load.wait()
        loadRunning = false
        let loadHandles = ((try? String(contentsOfFile: loadOut, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["case"] as? String
        }
        #expect(loadHandles.count > 0, "the second process enrolled during the rewrap")

        // 4. Every subject reads back; keys status shows 0 on version 1.
        func readAll() throws -> Int {
            let bad: [Int] = try d.parallel(total) { client, i in
                let r = try client.request("GET", "/v1/cases/\(handles[i])/checkups")
                return r.status == 200 && r.body.contains("\"subject-\(i)\"") ? 0 : 1
            }
            let badLoad: [Int] = try d.parallel(loadHandles.count) { client, i in
                try client.request("GET", "/v1/cases/\(loadHandles[i])").status == 200 ? 0 : 1
            }
            return bad.reduce(0, +) + badLoad.reduce(0, +)
        }
        #expect(try readAll() == 0)
        let status = try anonreg(["keys", "status", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        let versions = try #require(json?["versions"] as? [[String: Any]])
        #expect(versions.first { $0["version"] as? Int == 1 }?["subjects"] as? Int == 0)
        // Every subject is under version 2 (the second process may have had one enrolment in
        // flight when it was stopped, whose answer it never wrote down).
        let allSubjects =
            Int(
                try Binaries.runExecutable("/usr/bin/sqlite3", [d.stateDir + "/registry.sqlite", "SELECT count(*) FROM subject"])
                    .stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(allSubjects >= total + loadHandles.count)
        #expect(versions.first { $0["version"] as? Int == 2 }?["subjects"] as? Int == allSubjects)

        // 5. Retire, destroy; everything still reads, after a restart too; the key file is gone.
        #expect(try anonreg(["keys", "retire", "1"]).status == 0)
        #expect(try anonreg(["keys", "destroy", "1", "--yes"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-1.key"))
        #expect(d.stop() == 0)
        try d.start()
        #expect(try readAll() == 0)
        print(
            "e2e: rewrap acceptance run took \(String(format: "%.1f", Date().timeIntervalSince(started))) s "
                + "(\(loadHandles.count) enrolled by the second process; killed at \(killedAt) rewrapped)")
    }
}

/// Issue 21 §3: `keys destroy` counts the subjects wrapped under the version at the moment of
/// destroy. A retire recorded that none did; a restored older backup brings some back; destroying
/// then would shred live subjects.
@Suite(.serialized) struct DestroyCountsNowTests {
    @Test func destroyAfterRestoringAnOlderBackupIsRefusedWithTheCount() throws {
        let d = try DaemonHarness()
        try d.start()
        var handles: [String] = []
        for _ in 0..<3 {
            let r = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
            handles.append(try #require(r.string("case")))
        }
        // A database backup while the three are wrapped under KEK 1.
        let file = d.tmp.sub("older.anrgbak")
        let made = try d.anonreg(["backup", "create", file])
        #expect(made.status == 0, "\(made.stderr)")
        // Rotate, rewrap, retire 1: at this moment no subject uses it.
        #expect(try d.anonreg(["keys", "rotate", "--rewrap"]).status == 0)
        let retired = try d.anonreg(["keys", "retire", "1"])
        #expect(retired.status == 0, "\(retired.stderr)")
        #expect(d.stop() == 0)
        // The older backup comes back: its subjects are wrapped under the retired KEK 1.
        let restored = try d.anonreg(["backup", "restore", file, "--state-dir", d.stateDir, "--force"])
        #expect(restored.status == 0, "\(restored.stderr)")
        try d.start()
        defer { d.stop() }
        let destroy = try d.anonreg(["keys", "destroy", "1", "--yes"])
        #expect(destroy.status == 3, "KEK 1 was destroyed with restored subjects under it: \(destroy.stdout)")
        #expect(destroy.stderr.contains("3 subject(s) have their data key wrapped under it now"), "\(destroy.stderr)")
        #expect(FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-1.key"))
        for handle in handles { #expect(try d.request("GET", "/v1/cases/\(handle)/checkups").status == 200) }
        // The timer's form refuses too, and says which.
        let scheduled = try d.anonreg(["keys", "destroy", "--retired-for", "0", "--yes"])
        #expect(scheduled.status == 3, "\(scheduled.stdout)")
        // After a rewrap the version is unused again and goes.
        #expect(try d.anonreg(["keys", "rewrap"]).status == 0)
        let done = try d.anonreg(["keys", "destroy", "1", "--yes"])
        #expect(done.status == 0, "\(done.stderr)")
        #expect(!FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-1.key"))
        for handle in handles { #expect(try d.request("GET", "/v1/cases/\(handle)/checkups").status == 200) }
    }
}

struct Failed: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
