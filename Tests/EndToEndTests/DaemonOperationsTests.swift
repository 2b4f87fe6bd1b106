import AnonregTestSupport
import Foundation
import Testing

/// Issue 22 §5: the daemon's usage, version, configuration check, reload log, a second daemon
/// that refuses having done nothing, and a schema newer than the binary.
@Suite(.serialized) struct DaemonOperationsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The files of a state directory with their size, mode, mtime and content hash: a start that
    /// refuses, or a configuration check, must leave every one as it was.
    static func snapshot(_ directory: String) -> [String: String] {
        var out: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return out }
        for case let name as String in walker {
            let path = directory + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            let content =
                (st.st_mode & S_IFMT) == S_IFREG ? String(fnv1a(FileManager.default.contents(atPath: path) ?? Data()), radix: 16) : "-"
            out[name] = "\(st.st_size) \(st.st_mode) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(content)"
        }
        return out
    }

    static func fnv1a(_ data: Data) -> UInt64 {
        data.reduce(UInt64(0xcbf2_9ce4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    /// The `anonregd: ...` lines of a run's stderr (not the log lines).
    static func messages(_ text: String) -> [String] {
        text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("anonregd: ") }
    }

    @Test func noArgumentsPrintsTheUsageAndExitsTwo() throws {
        let bare = try Binaries.run("anonregd", [])
        #expect(bare.status == 2)
        #expect(bare.stderr.contains("USAGE: anonregd --config <config>"))
        let unknown = try Binaries.run("anonregd", ["--config", "/nonexistent", "--no-such-option"])
        #expect(unknown.status == 2, "a usage error is 2, not ArgumentParser's 64")
    }

    /// Both binaries name the release and the commit they were built from.
    @Test func versionNamesTheGitCommit() throws {
        for binary in ["anonreg", "anonregd"] {
            let result = try Binaries.run(binary, ["--version"])
            #expect(result.status == 0)
            let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let match = line.range(of: #"^[0-9]+\.[0-9]+\.[0-9]+ \(commit [0-9a-f]{40}(-dirty)?\)$"#, options: .regularExpression)
            #expect(match != nil, "\(binary) --version: \(line)")
            if let start = line.range(of: "commit ")?.upperBound {
                let commit = String(line[start...].prefix(40))
                let known = try Binaries.runExecutable("/usr/bin/git", ["-C", Self.repository, "cat-file", "-e", commit + "^{commit}"])
                #expect(known.status == 0, "\(commit) is a commit of this repository")
            }
        }
    }

    /// A `git archive` export has no .git: the commit comes from .git-commit (export-subst).
    @Test func aGitArchiveExportKnowsItsCommit() throws {
        let tmp = TemporaryDirectory()
        let head = try Binaries.runExecutable("/usr/bin/git", ["-C", Self.repository, "rev-parse", "HEAD"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let tarball = tmp.sub("export.tar")
        #expect(try Binaries.runExecutable("/usr/bin/git", ["-C", Self.repository, "archive", "-o", tarball, "HEAD"]).status == 0)
        let tree = tmp.sub("tree")
        try FileManager.default.createDirectory(atPath: tree, withIntermediateDirectories: true)
        #expect(try Binaries.runExecutable("/usr/bin/tar", ["-x", "-f", tarball, "-C", tree]).status == 0)
        let generated = tmp.sub("out")
        let run = try Binaries.runExecutable("/bin/sh", [tree + "/scripts/build-info.sh", tree, generated])
        #expect(run.status == 0, "\(run.stderr)")
        let text = try String(contentsOfFile: generated + "/GeneratedBuildInfo.swift", encoding: .utf8)
        #expect(text.contains("let generatedCommit = \"\(head)\""), "\(text)")
    }

    @Test func checkConfigAcceptsAGoodStateAndTouchesNothing() throws {
        let d = try DaemonHarness()
        let before = Self.snapshot(d.stateDir)
        let check = try Binaries.run("anonregd", ["--check-config", "--config", d.configPath])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains("\(d.configPath): valid"))
        #expect(check.stdout.contains("primary KEK 1, not sealed"))
        #expect(Self.snapshot(d.stateDir) == before, "a check writes nothing, not even SQLite's -shm")
        // With the daemon serving it (the reload case), a check passes and notes the daemon.
        try d.start()
        defer { d.stop() }
        let live = try Binaries.run("anonregd", ["--check-config", "--config", d.configPath])
        #expect(live.status == 0, "\(live.stderr)")
        #expect(live.stdout.contains("answers on \(d.socket) now"))
    }

    /// `--record-restore` is for a PostgreSQL registry restored with PostgreSQL's tools: on
    /// SQLite it refuses (exit 4), names `anonreg backup restore`, and touches nothing.
    @Test func recordRestoreRefusesOnSQLiteAndTouchesNothing() throws {
        let d = try DaemonHarness()
        let before = Self.snapshot(d.stateDir)
        let record = try Binaries.run("anonregd", ["--record-restore", "--config", d.configPath])
        #expect(record.status == 4, "\(record.stdout) \(record.stderr)")
        #expect(record.stderr.contains("anonreg backup restore"), "\(record.stderr)")
        #expect(Self.snapshot(d.stateDir) == before)
        let both = try Binaries.run("anonregd", ["--record-restore", "--check-config", "--config", d.configPath])
        #expect(both.status == 2, "\(both.stderr)")
    }

    /// The offline commands read the state directory's SQLite file. On a node whose
    /// configuration names PostgreSQL that file is an empty leftover of `anonreg init`: each
    /// refuses (exit 3), says what to do instead, and touches nothing, rather than report "audit
    /// log OK" or release statistics about no registry at all.
    @Test func offlineCommandsRefuseAPostgreSQLRegistry() throws {
        let d = try DaemonHarness()
        let text = try String(contentsOfFile: d.configPath, encoding: .utf8)
        try
            (text
            + "\n[storage]\nbackend = \"postgresql\"\n\n[postgres]\nsocket_dir = \"/run/postgresql\"\npassword_file = \"/etc/anonreg/pg\"\n")
            .write(toFile: d.configPath, atomically: true, encoding: .utf8)
        let backup = d.stateDir + "/../a-backup.anonreg-backup"
        FileManager.default.createFile(atPath: backup, contents: Data("not read".utf8))
        let before = Self.snapshot(d.stateDir)
        for (arguments, instead) in [
            (["audit", "verify", "--state-dir", d.stateDir], "without --state-dir"),
            (["stats", "--state-dir", d.stateDir], "without --state-dir"),
            (["backup", "restore", backup, "--state-dir", d.stateDir], "anonregd --record-restore"),
        ] {
            let run = try Binaries.run("anonreg", arguments)
            #expect(run.status == 3, "\(arguments): \(run.stdout) \(run.stderr)")
            #expect(run.stderr.contains("names a PostgreSQL registry"), "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains(instead), "\(arguments): \(run.stderr)")
            #expect(!run.stdout.contains("OK"), "\(arguments): \(run.stdout)")
        }
        #expect(Self.snapshot(d.stateDir) == before)

        // The installed layout: no anonreg.toml in the state directory, the configuration
        // elsewhere (/etc/anonreg/anonreg.toml, or $ANONREG_CONFIG) naming this state directory.
        let installed = d.tmp.sub("installed.toml")
        try FileManager.default.moveItem(atPath: d.configPath, toPath: installed)
        for arguments in [["audit", "verify", "--state-dir", d.stateDir], ["stats", "--state-dir", d.stateDir]] {
            let run = try Binaries.run("anonreg", arguments, environment: ["ANONREG_CONFIG": installed, "PATH": "/usr/bin:/bin"])
            #expect(run.status == 3, "\(arguments): \(run.stdout) \(run.stderr)")
            #expect(run.stderr.contains("names a PostgreSQL registry"), "\(arguments): \(run.stderr)")
            #expect(!run.stdout.contains("OK"), "\(run.stdout)")
        }
        // An installed configuration that does not load: which store serves the directory is
        // unknown, so nothing is reported.
        let unreadable = d.tmp.sub("unreadable.toml")
        try Data("[storage\n".utf8).write(to: URL(fileURLWithPath: unreadable))
        let unknown = try Binaries.run(
            "anonreg", ["audit", "verify", "--state-dir", d.stateDir], environment: ["ANONREG_CONFIG": unreadable, "PATH": "/usr/bin:/bin"])
        #expect(unknown.status == 3 && unknown.stderr.contains("does not load"), "\(unknown.stdout) \(unknown.stderr)")
        // A configuration that exists but does not load: which store it names is unknown.
        try Data("[storage\n".utf8).write(to: URL(fileURLWithPath: d.configPath))
        let broken = try Binaries.run("anonreg", ["audit", "verify", "--state-dir", d.stateDir])
        #expect(broken.status == 2, "\(broken.stdout) \(broken.stderr)")
    }

    /// Each thing a start refuses, --check-config refuses with the start's own message, exit 2,
    /// and leaves the state as it found it.
    @Test(arguments: [
        "clinic gid 0", "loose keys directory", "sealed keyring, no credential", "damaged database", "not a socket", "newer schema",
    ])
    func checkConfigRefusesWithTheMessageOfAStart(_ damage: String) throws {
        let d = try DaemonHarness(
            initArguments: damage == "sealed keyring, no credential"
                ? ["--passphrase-file", Self.passphraseFile(), "--kdf-strength", "interactive"] : [])
        switch damage {
        case "clinic gid 0":
            let text = try String(contentsOfFile: d.configPath, encoding: .utf8)
            try text.replacingOccurrences(of: "gids = []", with: "gids = [0]").write(
                toFile: d.configPath, atomically: true, encoding: .utf8)
        case "loose keys directory":
            chmod(d.stateDir + "/keys", 0o755)
        case "damaged database":
            try Data("this is not a database, it only has its name".utf8).write(to: URL(fileURLWithPath: d.stateDir + "/registry.sqlite"))
        case "not a socket":
            FileManager.default.createFile(atPath: d.socket, contents: Data("precious".utf8))
        case "newer schema":
            try Self.markNewerSchema(d.stateDir)
        default:
            break
        }
        let before = Self.snapshot(d.stateDir)
        let check = try Binaries.run("anonregd", ["--check-config", "--config", d.configPath])
        #expect(check.status == 2, "\(damage): \(check.stdout) \(check.stderr)")
        #expect(Self.snapshot(d.stateDir) == before, "\(damage): the check changed the state directory")
        let start = d.startExpectingRefusal()
        #expect(start.status != nil && start.status != 0, "\(damage): a start was not refused")
        let checkLines = Self.messages(check.stderr)
        #expect(!checkLines.isEmpty)
        #expect(checkLines == Self.messages(start.log), "\(damage): check said \(checkLines), the start said \(Self.messages(start.log))")
        if damage == "sealed keyring, no credential" {
            #expect(check.stderr.contains("systemd credential anonreg-keyring-passphrase"))
            // anonregd has no passphrase option: its message must name none (the offline
            // commands' --passphrase-file included), only the credential.
            for option in ["--passphrase", "option"] {
                #expect(!check.stderr.contains(option), "anonregd's message names \(option): \(check.stderr)")
            }
        }
    }

    static func passphraseFile() throws -> String {
        let path = NSTemporaryDirectory() + "anonreg-pass-\(UUID().uuidString)"
        try "a long test passphrase\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        return path
    }

    /// A database migrated by a later release: one migration this binary does not know, recorded
    /// as written by anonreg 9.9.9.
    static func markNewerSchema(_ stateDir: String) throws {
        let sql =
            "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future'); "
            + "INSERT INTO schema_release (migration, release) VALUES ('v99-from-the-future', '9.9.9');"
        let r = try Binaries.runExecutable("/usr/bin/sqlite3", [stateDir + "/registry.sqlite", sql])
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// Migrations are forward-only: an older binary refuses a newer schema, says which release
    /// wrote it and what a downgrade is, and changes nothing.
    @Test func aSchemaNewerThanTheBinaryIsRefusedNamingTheRelease() throws {
        let d = try DaemonHarness()
        try Self.markNewerSchema(d.stateDir)
        let dump = try d.databaseDump()
        let start = d.startExpectingRefusal()
        #expect(start.status == 4)
        #expect(start.log.contains("its schema was migrated by anonreg 9.9.9 (migration v99-from-the-future)"), "\(start.log)")
        #expect(start.log.contains("restore the database backup taken before the upgrade"))
        #expect(try d.databaseDump() == dump)
    }

    /// A second daemon on a served state directory refuses before it does anything: it removes
    /// no temporary copy of the running daemon, runs no sweep and writes no audit entry. With the
    /// same socket it finds the daemon answering; with another socket path, the state lock.
    @Test func aSecondDaemonDoesNothingBeforeItRefuses() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        // What the running daemon's online backup has in progress looks like this.
        let copy = d.stateDir + "/.backup-0123456789ab.sqlite"
        FileManager.default.createFile(atPath: copy, contents: Data("a backup in progress".utf8))
        let otherConfig = d.tmp.sub("other.toml")
        try String(contentsOfFile: d.configPath, encoding: .utf8)
            .replacingOccurrences(of: "socket = \"\(d.socket)\"", with: "socket = \"\(d.tmp.sub("other.sock"))\"")
            .write(toFile: otherConfig, atomically: true, encoding: .utf8)
        usleep(300_000)  // the first daemon's start-up sweep and policy entry are done
        let entries = try d.auditEntryCount()
        for (config, expected) in [(d.configPath, "another anonregd already answers"), (otherConfig, "another anonregd already serves")] {
            // A daemon that does not refuse would serve forever: stop it after 20 s.
            let second = try Self.runWithTimeout("anonregd", ["--config", config], seconds: 20)
            #expect(second.status == 5, "\(second.stderr)")
            #expect(second.stderr.contains(expected), "\(second.stderr)")
            #expect(!second.stderr.contains("sweep"), "the refused daemon ran a sweep: \(second.stderr)")
            #expect(!second.stderr.contains("removed a stale"), "\(second.stderr)")
            #expect(!second.stderr.contains("error"), "a refused start logs no false error: \(second.stderr)")
        }
        #expect(FileManager.default.fileExists(atPath: copy), "the running daemon's temporary copy was removed")
        #expect(try d.auditEntryCount() == entries)
        #expect(!FileManager.default.fileExists(atPath: d.tmp.sub("other.sock")))
        #expect(try d.request("GET", "/v1/health").status == 200)
    }

    /// SIGHUP logs what it changed, one line per change; a configuration that does not validate
    /// is logged with its reason and the running one stays.
    @Test func reloadLogsWhatChangedOrWhyItWasRefused() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let original = try String(contentsOfFile: d.configPath, encoding: .utf8)
        let changed =
            original
            .replacingOccurrences(of: "monitor_uids = []", with: "monitor_uids = [4242]")
            .replacingOccurrences(of: "oprf_burst = 100", with: "oprf_burst = 7")
            .replacingOccurrences(of: "[rate_limits]", with: "[clinics.east]\nuids = [4300]\ngids = []\n\n[rate_limits]")
        try changed.write(toFile: d.configPath, atomically: true, encoding: .utf8)
        kill(try #require(d.pid), SIGHUP)
        #expect(Self.waitFor("configuration reloaded", in: d))
        let log = d.log.text
        for line in [
            "configuration reload: monitor added: uid 4242", "configuration reload: clinic east added (uids 4300)",
            "configuration reload: rate_limits.oprf_burst 100 -> 7",
        ] {
            #expect(log.contains(line), "missing: \(line)")
        }
        #expect(try d.request("GET", "/v1/health", uid: 4300, gid: 0).status == 200)

        // gid 0 for a clinic is refused; the running configuration (with east) stays.
        try changed.replacingOccurrences(of: "uids = [4300]\ngids = []", with: "uids = [4300]\ngids = [0]")
            .write(toFile: d.configPath, atomically: true, encoding: .utf8)
        kill(try #require(d.pid), SIGHUP)
        #expect(Self.waitFor("configuration not reloaded, the running one stays", in: d))
        #expect(d.log.text.contains("clinics.east.gids contains 0"))
        #expect(try d.request("GET", "/v1/health", uid: 4300, gid: 0).status == 200)
    }

    /// Runs a binary, SIGKILLing it after `seconds`; its status (137 when killed) and output.
    static func runWithTimeout(_ name: String, _ arguments: [String], seconds: Double) throws -> Binaries.Result {
        let tmp = TemporaryDirectory()
        let out = tmp.sub("out")
        let err = tmp.sub("err")
        let child = try Spawned.start(Binaries.path(name), arguments, stdout: out, stderr: err)
        let deadline = Date().addingTimeInterval(seconds)
        var status = child.hasExited()
        while status == nil, Date() < deadline {
            usleep(20_000)
            status = child.hasExited()
        }
        if status == nil {
            child.signal(SIGKILL)
            status = child.wait()
        }
        return Binaries.Result(
            status: status ?? -1, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    static func waitFor(_ text: String, in d: DaemonHarness) -> Bool {
        for _ in 0..<200 {
            if d.log.text.contains(text) { return true }
            usleep(25_000)
        }
        return false
    }

    /// `anonreg clinics add` refuses gid 0 and the service user's uid and gid, and leaves the file.
    @Test func clinicsAddRefusesRootsGroupAndTheServiceUser() throws {
        let d = try DaemonHarness()
        let text = try String(contentsOfFile: d.configPath, encoding: .utf8)
            .replacingOccurrences(of: "# user = \"anonreg\"", with: "user = \"nobody\"")
        try text.write(toFile: d.configPath, atomically: true, encoding: .utf8)
        for (option, value, reason) in [
            ("--gid", "0", "root's group"), ("--uid", "65534", "the service user nobody"),
            ("--gid", "65534", "the group of the service user"),
        ] {
            let r = try Binaries.run("anonreg", ["clinics", "add", "north", option, value, "--config", d.configPath])
            #expect(r.status == 3, "\(option) \(value): \(r.stderr)")
            #expect(r.stderr.contains(reason), "\(r.stderr)")
            #expect(try String(contentsOfFile: d.configPath, encoding: .utf8) == text)
        }
        // Root's uid stays possible (init's single-user trial uses it).
        #expect(try Binaries.run("anonreg", ["clinics", "remove", "local", "--config", d.configPath]).status == 0)
        let root = try Binaries.run("anonreg", ["clinics", "add", "rootclinic", "--uid", "0", "--config", d.configPath])
        #expect(root.status == 0, "\(root.stderr)")
    }

    /// The text of `anonreg self` shows the access log the JSON holds (issue 22 §6).
    @Test func selfTextShowsTheAccessLog() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let code = try #require(enrol.string("code"))
        let handle = try #require(enrol.string("case"))
        #expect(try d.request("GET", "/v1/cases/\(handle)").status == 200)
        let json = try d.anonreg(["self", code, "--json"])
        let log = try #require(
            (try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["accessLog"] as? [[String: Any]])
        #expect(log.count >= 2)
        let text = try d.anonreg(["self", code])
        #expect(text.status == 0)
        #expect(text.stdout.contains("Access log (who read or changed this record, oldest first):"))
        for entry in log {
            let line = "  \(entry["at"] as? String ?? "?")  \(entry["text"] as? String ?? "?")"
            #expect(text.stdout.contains(line), "missing from the text: \(line)")
        }
    }
}
