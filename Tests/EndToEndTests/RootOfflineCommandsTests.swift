import AnonregTestSupport
import Foundation
import Testing

/// Issue 22 §1: root running the offline commands on the installed layout, where the service
/// user owns the state directory (docs/OPERATIONS.md §Root and the offline commands). The
/// service user is uid 61010 (no account needed: the owner's uid is what counts).
@Suite(.serialized) struct RootOfflineCommandsTests {
    static let service: UInt32 = 61010

    /// A state directory made by the service user, as `runuser -u anonreg -- anonreg init` would,
    /// with root added as an admin (the installed configuration's admin), and a root-only
    /// directory for what root writes.
    final class Layout {
        let tmp = TemporaryDirectory()
        var state: String { tmp.sub("state") }
        var rootOnly: String { tmp.sub("root-only") }
        var config: String { state + "/anonreg.toml" }

        init() throws {
            chmod(tmp.path, 0o755)
            // As systemd-tmpfiles makes it: the service user's, mode 0750.
            mkdir(tmp.sub("state"), 0o750)
            chown(tmp.sub("state"), RootOfflineCommandsTests.service, RootOfflineCommandsTests.service)
            let made = try RootOfflineCommandsTests.asService(["init", "--state-dir", tmp.sub("state")])
            guard made.status == 0 else { throw DaemonHarness.HarnessError.initFailed(made.stderr) }
            let text = try String(contentsOfFile: config, encoding: .utf8)
                .replacingOccurrences(
                    of: "admin_uids = [\(RootOfflineCommandsTests.service)]", with: "admin_uids = [\(RootOfflineCommandsTests.service), 0]")
            try RootOfflineCommandsTests.asRootWrite(text, to: config)
            mkdir(rootOnly, 0o700)
        }
    }

    /// Root writes the config in place (it is the service user's file; root may).
    static func asRootWrite(_ text: String, to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(text.utf8))
        try handle.close()
    }

    /// No /etc/anonreg/anonreg.toml of this host takes part unless a test names one.
    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["ANONREG_CONFIG"] = "/nonexistent/anonreg.toml"
        return env
    }

    static func asService(_ arguments: [String]) throws -> Binaries.Result {
        try Binaries.runExecutable(
            "/usr/bin/setpriv", ["--reuid=\(service)", "--regid=\(service)", "--clear-groups", Binaries.path("anonreg")] + arguments,
            environment: environment)
    }

    static func asRoot(_ arguments: [String], environment: [String: String]? = nil) throws -> Binaries.Result {
        try Binaries.run("anonreg", arguments, environment: environment ?? Self.environment)
    }

    static func owner(_ path: String) -> UInt32 {
        var st = stat()
        return lstat(path, &st) == 0 ? st.st_uid : UInt32.max
    }

    static let droppedLine = "anonreg: working as uid \(service), the owner of "

    /// The daemon, as the service user, on the layout; `body` runs while it serves.
    static func serving(_ layout: Layout, _ body: (String) throws -> Void) throws {
        let log = layout.tmp.sub("daemon-\(UUID().uuidString).log")
        let daemon = try Spawned.start(
            "/usr/bin/setpriv",
            [
                "--reuid=\(service)", "--regid=\(service)", "--clear-groups",
                Binaries.path("anonregd"), "--config", layout.config,
            ], environment: environment, stdout: log)
        defer {
            daemon.signal(SIGTERM)
            daemon.wait()
        }
        let socket = layout.state + "/anonreg.sock"
        var up = false
        for _ in 0..<200 where !up {
            up = (try? OneShotSocketClient(socketPath: socket).send("GET", "/v1/health"))?.status == 200
            if !up { usleep(25_000) }
        }
        guard up else { throw DaemonHarness.HarnessError.timeout((try? String(contentsOfFile: log, encoding: .utf8)) ?? "") }
        try body(socket)
    }

    @Test func auditVerifyAndKeysBackupWorkAsTheOwner() throws {
        guard geteuid() == 0 else { return }
        let layout = try Layout()
        let verify = try Self.asRoot(["audit", "verify", "--state-dir", layout.state])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stderr == Self.droppedLine + layout.state + "\n", "one line on stderr: \(verify.stderr)")
        // A keyring backup root makes lands root's own 0600 file in a root-only directory.
        let pass = layout.rootOnly + "/pass"
        try "a keyring backup passphrase\n".write(toFile: pass, atomically: true, encoding: .utf8)
        chmod(pass, 0o600)
        let file = layout.rootOnly + "/keys.anrgkbk"
        let backup = try Self.asRoot([
            "keys", "backup", file, "--state-dir", layout.state, "--passphrase-file", pass, "--kdf-strength", "interactive",
        ])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(Self.owner(file) == 0)
        // ... and restores, as root, into the service user's keys directory.
        let restore = try Self.asRoot(["keys", "restore", file, "--state-dir", layout.state, "--passphrase-file", pass, "--force"])
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(Self.owner(layout.state + "/keys") == Self.service)
        #expect(Self.owner(layout.state + "/keys/keyring.json") == Self.service)
        let again = try Self.asService(["audit", "verify", "--state-dir", layout.state])
        #expect(again.status == 0, "the service user still reads its keys: \(again.stderr)")
    }

    /// The guide's backup and restore, as the installed admin (root) does them: `backup create`
    /// writes a root-only 0600 FILE; root restores it directly, or the service user restores it
    /// from standard input (`runuser -u anonreg -- anonreg backup restore - < FILE`). Either way
    /// the restored database is the service user's and the daemon serves it.
    @Test func aBackupRootMadeRestoresBothWays() throws {
        guard geteuid() == 0 else { return }
        let layout = try Layout()
        let file = layout.rootOnly + "/registry.anrgbak"
        var handle = ""
        try Self.serving(layout) { socket in
            // Clinic "local" is the service uid: enrol as it.
            let enrol = try Binaries.runExecutable(
                "/usr/bin/setpriv",
                [
                    "--reuid=\(Self.service)", "--regid=\(Self.service)", "--clear-groups",
                    "/usr/bin/curl", "-sS", "--unix-socket", socket, "--json", DaemonHarness.enrolBody(), "http://anonreg/v1/subjects",
                ])
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(enrol.stdout.utf8)) as? [String: Any], "\(enrol.stdout) \(enrol.stderr)")
            handle = try #require(json["case"] as? String)
            var env = Self.environment
            env["ANONREG_SOCKET"] = socket
            // The test's service user is a bare uid, not `anonreg`: name it, so that root's CLI
            // trusts the socket directory it owns (docs/OPERATIONS.md §Socket).
            env["ANONREG_DAEMON_USER"] = "\(Self.service)"
            let made = try Self.asRoot(["backup", "create", file], environment: env)
            #expect(made.status == 0, "\(made.stderr)")
        }
        #expect(Self.owner(file) == 0)
        #expect(access(file, R_OK) == 0)

        // 1. Root restores directly: the restore works as the owner.
        let direct = try Self.asRoot(["backup", "restore", file, "--state-dir", layout.state, "--force"])
        #expect(direct.status == 0, "\(direct.stderr)")
        #expect(direct.stderr.hasPrefix(Self.droppedLine))
        #expect(Self.owner(layout.state + "/registry.sqlite") == Self.service, "a database root restored must stay the daemon's")

        // 2. The service user restores from standard input, which root's shell opened.
        let piped = try Binaries.runExecutable(
            "/bin/sh",
            [
                "-c",
                "exec /usr/bin/setpriv --reuid=\(Self.service) --regid=\(Self.service) --clear-groups '\(Binaries.path("anonreg"))' backup restore - --state-dir '\(layout.state)' --force < '\(file)'",
            ],
            environment: Self.environment)
        #expect(piped.status == 0, "\(piped.stderr)")
        #expect(piped.stdout.contains("restored standard input"), "\(piped.stdout)")
        let verify = try Binaries.runExecutable(
            "/bin/sh",
            [
                "-c",
                "exec /usr/bin/setpriv --reuid=\(Self.service) --regid=\(Self.service) --clear-groups '\(Binaries.path("anonreg"))' backup verify - --state-dir '\(layout.state)' < '\(file)'",
            ],
            environment: Self.environment)
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(Self.owner(layout.state + "/registry.sqlite") == Self.service)

        // The daemon, as the service user, serves the restored subject.
        try Self.serving(layout) { socket in
            let status = try Binaries.runExecutable(
                "/usr/bin/setpriv",
                [
                    "--reuid=\(Self.service)", "--regid=\(Self.service)", "--clear-groups",
                    "/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket,
                    "http://anonreg/v1/cases/\(handle)",
                ])
            #expect(status.stdout == "200")
        }
    }

    /// `init --keys-only` on the directories systemd-tmpfiles made (owned by the service user).
    @Test func initKeysOnlyAsRootFillsTheServiceUsersDirectory() throws {
        guard geteuid() == 0 else { return }
        let tmp = TemporaryDirectory()
        chmod(tmp.path, 0o755)
        let state = tmp.sub("state")
        mkdir(state, 0o750)
        mkdir(state + "/keys", 0o700)
        chown(state, Self.service, Self.service)
        chown(state + "/keys", Self.service, Self.service)
        let made = try Self.asRoot(["init", "--state-dir", state, "--keys-only"])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(made.stderr == Self.droppedLine + state + "\n")
        for file in ["keys/keyring.json", "keys/kek-1.key", "keys/index.key", "registry.sqlite"] {
            #expect(Self.owner(state + "/" + file) == Self.service, "\(file) must be the service user's")
        }
    }

    /// The service's state directory does not exist yet (a new host before systemd-tmpfiles, or
    /// after a lost disk): root's `init` and `keys restore` refuse and create nothing, instead
    /// of making a root-owned directory that anonregd could not use.
    @Test func aMissingServiceStateDirectoryIsNotCreatedAsRoots() throws {
        guard geteuid() == 0 else { return }
        let tmp = TemporaryDirectory()
        chmod(tmp.path, 0o755)
        let state = tmp.sub("var/lib/anonreg")
        try FileManager.default.createDirectory(atPath: tmp.sub("var/lib"), withIntermediateDirectories: true)
        let config = tmp.sub("anonreg.toml")
        let template = try Self.asRoot([
            "config-template", "--state-dir", state, "--socket", tmp.sub("run/anonreg.sock"), "--user", "\(Self.service)",
        ])
        try template.stdout.write(toFile: config, atomically: true, encoding: .utf8)
        var env = Self.environment
        env["ANONREG_CONFIG"] = config
        let backup = tmp.sub("keys.anrgkbk")
        FileManager.default.createFile(atPath: backup, contents: Data("not needed: refused before it is read".utf8))
        for arguments in [
            ["init", "--state-dir", state, "--keys-only"], ["init", "--state-dir", state],
            ["keys", "restore", backup, "--state-dir", state, "--force"],
        ] {
            let r = try Self.asRoot(arguments, environment: env)
            #expect(r.status == 3, "\(arguments): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("\(state) does not exist. anonreg.toml names the service user uid \(Self.service)"), "\(r.stderr)")
            #expect(r.stderr.contains("install -d -m 0750 -o \(Self.service) -g \(Self.service) \(state)"), "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: state), "\(arguments) created \(state)")
        }
        // Made as systemd-tmpfiles makes it, init then fills it as the service user.
        mkdir(state, 0o750)
        chown(state, Self.service, Self.service)
        let made = try Self.asRoot(["init", "--state-dir", state, "--keys-only"], environment: env)
        #expect(made.status == 0, "\(made.stderr)")
        #expect(Self.owner(state + "/keys/keyring.json") == Self.service)
    }

    /// A state directory root owns, while anonreg.toml names another service user, is refused:
    /// anonregd could not read what root would write there.
    @Test func aRootOwnedStateDirectoryIsRefusedWhenTheConfigNamesAServiceUser() throws {
        guard geteuid() == 0 else { return }
        let tmp = TemporaryDirectory()
        let made = try Self.asRoot(["init", "--state-dir", tmp.sub("state")])
        #expect(made.status == 0)
        let config = tmp.sub("state/anonreg.toml")
        let text = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(
            of: "# user = \"anonreg\"", with: "user = \"nobody\"")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        var env = Self.environment
        env["ANONREG_CONFIG"] = config
        let before = tmp.allFiles()
        for arguments in [
            ["audit", "verify", "--state-dir", tmp.sub("state")],
            ["keys", "export-oprf-seed", "--state-dir", tmp.sub("state"), "--output", tmp.sub("seed")],
        ] {
            let r = try Self.asRoot(arguments, environment: env)
            #expect(r.status == 3, "\(arguments): \(r.stderr)")
            #expect(r.stderr.contains("belongs to root, but anonreg.toml names the service user nobody"), "\(r.stderr)")
            #expect(r.stderr.contains("chown -R nobody: "), "the fix gives the directory to the service user: \(r.stderr)")
        }
        #expect(tmp.allFiles() == before, "nothing was written (no seed file either)")
    }
}
