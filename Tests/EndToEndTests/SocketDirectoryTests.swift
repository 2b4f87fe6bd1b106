import AnonregTestSupport
import Foundation
import Testing

/// Issue 14 §3: the socket could be hijacked through a writable or foreign-owned directory. A
/// clinic in the directory's group renamed `anonreg.sock`, bound its own listener and read
/// another clinic's `POST /v1/self` with the patient's code in it. The daemon must refuse such a
/// layout at start, and the CLI must refuse to talk to a socket someone else could have placed.
@Suite(.serialized) struct SocketDirectoryTests {
    /// A clinic system in gid 2500 (the socket's group).
    static let attackerUID: UInt32 = 65534
    static let clinicGID: UInt32 = 2500

    /// A harness whose socket lives in `run` (created by `layout` before the daemon starts).
    static func harness(layout: (String) throws -> Void) throws -> (DaemonHarness, String) {
        let h = try DaemonHarness()
        let run = h.tmp.sub("run")
        try layout(run)
        let text = try String(contentsOfFile: h.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "socket = \"\(h.stateDir)/anonreg.sock\"", with: "socket = \"\(run)/anonreg.sock\"")
            .write(toFile: h.configPath, atomically: true, encoding: .utf8)
        h.customSocket = run + "/anonreg.sock"
        return (h, run)
    }

    static func makeDirectory(_ path: String, mode: mode_t, uid: UInt32 = 0, gid: UInt32 = 0) throws {
        guard mkdir(path, mode) == 0, chown(path, uid, gid) == 0, chmod(path, mode) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
    }

    @Test func aGroupWritableRunDirectoryIsRefusedAtStart() throws {
        let (h, run) = try Self.harness { try Self.makeDirectory($0, mode: 0o770, gid: Self.clinicGID) }
        let (status, log) = h.startExpectingRefusal()
        #expect(
            status == 5,
            "the daemon started in a 0770 root:\(Self.clinicGID) directory, where any clinic of that group can replace its socket:\n\(log)")
        #expect(log.contains("refusing to listen: \(run) has mode 770 and is writable by its group (gid \(Self.clinicGID))"), "\(log)")
        #expect(log.contains("chmod go-w \(run)"))
        #expect(!FileManager.default.fileExists(atPath: run + "/anonreg.sock"))
    }

    @Test func aRunDirectoryOwnedByAClinicIsRefusedAtStart() throws {
        let (h, run) = try Self.harness { try Self.makeDirectory($0, mode: 0o750, uid: Self.attackerUID, gid: Self.clinicGID) }
        let (status, log) = h.startExpectingRefusal()
        #expect(status == 5, "the daemon started in a directory owned by clinic uid \(Self.attackerUID):\n\(log)")
        #expect(log.contains("\(run) is owned by uid \(Self.attackerUID)"), "\(log)")
        #expect(log.contains("chown root \(run)"))
    }

    /// The layout of systemd/anonreg.tmpfiles and anonregd.socket (directory 0750, owner the
    /// daemon's user, group the clinics'; socket 0660), read from the shipped files. The daemon
    /// runs as root here, so root stands in for `anonreg`. A clinic in the group can reach the
    /// socket but can neither rename it nor put its own beside it.
    @Test func theShippedLayoutIsAcceptedAndHoldsAgainstTheGroup() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let tmpfiles = try String(contentsOf: root.appendingPathComponent("systemd/anonreg.tmpfiles"), encoding: .utf8)
        let line = try #require(tmpfiles.split(separator: "\n").first { $0.hasPrefix("d /run/anonreg ") })
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        let mode = try #require(mode_t(fields[2], radix: 8))
        #expect(
            fields[3] == "anonreg" && fields[4] == "anonreg-clinic",
            "the daemon's user owns the directory, the clinics' group may traverse it")
        let socketUnit = try String(contentsOf: root.appendingPathComponent("systemd/anonregd.socket"), encoding: .utf8)
        #expect(socketUnit.contains("DirectoryMode=\(String(mode, radix: 8).count == 3 ? "0" : "")\(String(mode, radix: 8))"))
        let (h, run) = try Self.harness { try Self.makeDirectory($0, mode: mode, gid: Self.clinicGID) }
        try h.start()
        defer { h.stop() }
        #expect(try h.request("GET", "/v1/health", socket: run + "/anonreg.sock").status == 200)
        // The attacker, a member of the clinic group, tries what worked in the review.
        let rename = try Binaries.runExecutable(
            "/usr/bin/setpriv",
            [
                "--reuid=\(Self.attackerUID)", "--regid=\(Self.clinicGID)", "--clear-groups", "/bin/mv", run + "/anonreg.sock",
                run + "/old.sock",
            ])
        #expect(rename.status != 0, "a clinic renamed the daemon's socket")
        let bind = try Binaries.runExecutable(
            "/usr/bin/setpriv",
            [
                "--reuid=\(Self.attackerUID)", "--regid=\(Self.clinicGID)", "--clear-groups",
                "/usr/bin/socat", "-T1", "UNIX-LISTEN:\(run)/evil.sock", "/dev/null",
            ])
        #expect(bind.status != 0, "a clinic bound its own socket in the run directory")
        #expect(!FileManager.default.fileExists(atPath: run + "/evil.sock"))
        #expect(try h.request("GET", "/v1/health", socket: run + "/anonreg.sock").status == 200)
    }

    /// `make run`'s layout: scripts/run-local.sh on ./state under the checkout.
    @Test func makeRunsLayoutStillStarts() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let state = root.appendingPathComponent(".build/test-make-run-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        var env = ProcessInfo.processInfo.environment
        env["STATE_DIR"] = state
        env["BIN"] = Binaries.directory.path
        let log = state + ".log"
        defer { try? FileManager.default.removeItem(atPath: log) }
        let daemon = try Spawned.start(
            "/bin/bash", [root.appendingPathComponent("scripts/run-local.sh").path], environment: env, stdout: log)
        defer {
            daemon.signal(SIGTERM)
            daemon.wait()
        }
        var status = 0
        for _ in 0..<200 where status != 200 {
            if let exited = daemon.hasExited() {
                Issue.record("make run's daemon exited with \(exited): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
                return
            }
            let reply = try? Binaries.runExecutable(
                "/usr/bin/curl",
                ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", state + "/anonreg.sock", "http://x/v1/health"])
            status = Int(reply?.stdout ?? "") ?? 0
            if status != 200 { usleep(50_000) }
        }
        #expect(status == 200)
        // The CLI trusts it too (the caller's own daemon, in the caller's own directories).
        let health = try Binaries.run("anonreg", ["health", "--socket", state + "/anonreg.sock"])
        #expect(health.status == 0, "\(health.stderr)")
    }

    /// The CLI's own check: a socket in a group-writable directory, put there by a clinic of that
    /// group, gets nothing (the patient's code stays with the CLI), and the CLI says why.
    @Test func theCLIRefusesASocketSomeoneElseCouldHavePlaced() throws {
        let tmp = TemporaryDirectory()
        chmod(tmp.path, 0o755)
        let run = tmp.sub("run")
        try Self.makeDirectory(run, mode: 0o770, gid: Self.clinicGID)
        let capture = tmp.sub("captured")
        FileManager.default.createFile(atPath: capture, contents: nil)
        chmod(capture, 0o666)
        let listener = try Spawned.start(
            "/usr/bin/setpriv",
            [
                "--reuid=\(Self.attackerUID)", "--regid=\(Self.clinicGID)", "--clear-groups",
                "/usr/bin/socat", "-u", "UNIX-LISTEN:\(run)/anonreg.sock,fork", "OPEN:\(capture),append",
            ])
        defer {
            // SIGKILL: a spawned child inherits the test thread's blocked signals (SIGTERM too).
            listener.signal(SIGKILL)
            listener.wait()
        }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: run + "/anonreg.sock") { usleep(20_000) }
        let code = "7TH6-TX19-PWFG-CCSY-SFQ7-SWRP-6SV"
        let sent = try Binaries.run("anonreg", ["self", code, "--socket", run + "/anonreg.sock"])
        #expect(sent.status == 3, "\(sent.stderr)")
        #expect(
            sent.stderr.contains("refusing to send anything to \(run)/anonreg.sock: \(run) has mode 770 and is writable by its group"),
            "\(sent.stderr)")
        usleep(200_000)
        #expect(((try? String(contentsOfFile: capture, encoding: .utf8)) ?? "").isEmpty, "the attacker's listener received the request")

        // Sticky and world-writable (like /tmp): the directory is fine, but the socket is the
        // attacker's own, so the CLI still refuses it.
        chmod(run, 0o1777)
        let again = try Binaries.run("anonreg", ["self", code, "--socket", run + "/anonreg.sock"])
        #expect(again.status == 3, "\(again.stderr)")
        #expect(again.stderr.contains("the socket is owned by uid \(Self.attackerUID)"), "\(again.stderr)")
        usleep(200_000)
        #expect(((try? String(contentsOfFile: capture, encoding: .utf8)) ?? "").isEmpty, "the attacker's listener received the request")
    }
}
