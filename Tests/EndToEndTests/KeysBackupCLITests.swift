import AnonregTestSupport
import Foundation
import Testing

/// Exact stdout, stderr and exit status of `anonreg keys …` and `anonreg backup …`, for success
/// and for each refusal (docs/OPERATIONS.md §Exit codes).
@Suite(.serialized) struct KeysBackupCLITests {
    struct Expected {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func check(_ r: Binaries.Result, _ e: Expected, _ what: String) {
        #expect(r.status == e.status, "\(what): status")
        #expect(r.stdout == e.stdout, "\(what): stdout")
        #expect(r.stderr == e.stderr, "\(what): stderr")
    }

    @Test func exactOutputsAndExitCodes() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let anonreg = d.anonreg
        let state = d.stateDir
        #expect(try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()).status == 201)

        Self.check(
            try anonreg(["keys", "rotate", "--if-older-than", "30"]),
            Expected(status: 0, stdout: "primary KEK 1 is 0 day(s) old (less than 30); not rotated\n", stderr: ""),
            "scheduled rotation, not due")
        #expect(try anonreg(["keys", "rotate"]).status == 0)
        let manifestBefore = try String(contentsOfFile: state + "/keys/keyring.json", encoding: .utf8)
        Self.check(
            try anonreg(["keys", "retire", "1"]),
            Expected(
                status: 3, stdout: "",
                stderr:
                    "anonreg: KEK version 1 cannot go from active to retired: 1 subject(s) still use it; run `anonreg keys rewrap` first. [kek_transition_refused, HTTP 409]\n"
            ),
            "retire in use")
        Self.check(
            try anonreg(["keys", "destroy", "1"]),
            Expected(
                status: 3, stdout: "",
                stderr: "anonreg: refusing to destroy KEK version 1 without a typed confirmation, and stdin is not a terminal; pass --yes\n"
            ),
            "destroy without --yes on a non-terminal")
        Self.check(
            try anonreg(["keys", "destroy", "1", "--yes"]),
            Expected(
                status: 3, stdout: "",
                stderr: "anonreg: KEK version 1 cannot go from active to destroyed: retire it first. [kek_transition_refused, HTTP 409]\n"),
            "destroy an active version")
        #expect(try String(contentsOfFile: state + "/keys/keyring.json", encoding: .utf8) == manifestBefore, "refusals change nothing")
        #expect(FileManager.default.fileExists(atPath: state + "/keys/kek-1.key"))
        Self.check(
            try anonreg(["keys", "retire", "1", "--unused"]),
            Expected(
                status: 2, stdout: "",
                stderr: """
                    Error: give a VERSION or --unused (not both)
                    Usage: anonreg keys retire [--socket <socket>] [--json] [--lang <lang>] [<version>] [--unused]
                      See 'anonreg keys retire --help' for more information.

                    """),
            "usage error")

        // Unreachable daemon: exit 4, and no file is left behind.
        let target = d.tmp.sub("unreachable.anrgbak")
        Self.check(
            try anonreg(["backup", "create", target, "--socket", d.tmp.sub("nothing.sock")]),
            Expected(
                status: 4, stdout: "",
                stderr:
                    "anonreg: cannot connect to anonregd at \(d.tmp.sub("nothing.sock")): No such file or directory. Is it running? (set --socket or ANONREG_SOCKET)\n"
            ),
            "backup create, daemon unreachable")
        #expect(!FileManager.default.fileExists(atPath: target))
        Self.check(
            try anonreg(["backup", "verify", d.configPath]),
            Expected(
                status: 1, stdout: "",
                stderr:
                    "anonreg: \(d.configPath) cannot be used: it is not an anonreg database backup (no ANRGBAK2 or ANRGBAK1 magic). It was left untouched.\n"
            ),
            "verify a file that is not a backup")

        // Keyring backup: passphrase from a file only when there is no terminal.
        let keysFile = d.tmp.sub("keys.anrgkbk")
        Self.check(
            try anonreg(["keys", "backup", keysFile, "--state-dir", state]),
            Expected(
                status: 2, stdout: "", stderr: "anonreg: no terminal to ask for the backup passphrase on; use --passphrase-file FILE\n"),
            "keys backup without a passphrase source")
        #expect(!FileManager.default.fileExists(atPath: keysFile))
        let right = d.tmp.sub("right")
        let wrong = d.tmp.sub("wrong")
        try "the right one\n".write(toFile: right, atomically: true, encoding: .utf8)
        try "the wrong one\n".write(toFile: wrong, atomically: true, encoding: .utf8)
        chmod(right, 0o600)
        chmod(wrong, 0o600)
        // 7 files: five keys, the manifest, and the erasure ledger the daemon opens (creates) at start.
        Self.check(
            try anonreg(["keys", "backup", keysFile, "--state-dir", state, "--passphrase-file", right, "--kdf-strength", "interactive"]),
            Expected(
                status: 0, stdout: "wrote \(keysFile) (mode 0600): 8 files of \(state)/keys, sealed with Argon2id (64 MiB, 2 passes)\n",
                stderr: ""),
            "keys backup")
        Self.check(
            try anonreg(["keys", "backup", keysFile, "--state-dir", state, "--passphrase-file", right]),
            Expected(
                status: 3, stdout: "", stderr: "anonreg: \(keysFile) already exists; choose a new file name (nothing is ever overwritten)\n"
            ),
            "keys backup over an existing file")
        let fresh = d.tmp.sub("fresh")
        mkdir(fresh, 0o700)
        Self.check(
            try anonreg(["keys", "restore", keysFile, "--state-dir", fresh, "--passphrase-file", wrong]),
            Expected(status: 1, stdout: "", stderr: "anonreg: wrong passphrase (or the backup file was altered); nothing was written.\n"),
            "keys restore, wrong passphrase")
        #expect(try FileManager.default.contentsOfDirectory(atPath: fresh).isEmpty, "a wrong passphrase writes nothing")
        Self.check(
            try anonreg(["keys", "restore", keysFile, "--state-dir", state, "--passphrase-file", right]),
            Expected(
                status: 3, stdout: "",
                stderr:
                    "anonreg: \(state)/registry.sqlite is open in a running anonregd; stop it first (systemctl stop anonregd.socket anonregd.service), then restore the keyring\n"
            ),
            "keys restore under a running daemon")
        let restored = try anonreg(["keys", "restore", keysFile, "--state-dir", fresh, "--passphrase-file", right])
        #expect(restored.status == 0 && restored.stderr == "")
        // The creation time is the one in the backup's clear header ("ANRGKBK1" ‖ BE32(n) ‖ JSON).
        let sealed = [UInt8](try Data(contentsOf: URL(fileURLWithPath: keysFile)))
        let n = sealed[8..<12].reduce(0) { $0 << 8 | Int($1) }
        let header = try #require(try JSONSerialization.jsonObject(with: Data(sealed[12..<(12 + n)])) as? [String: Any])
        let createdAt = try #require(header["createdAt"] as? String)
        #expect(restored.stdout == "restored 8 files into \(fresh)/keys (backup taken \(createdAt))\n")
        for name in ["keyring.json", "kek-1.key", "kek-2.key", "index.key", "oprf-seed.key", "audit-signing.key"] {
            #expect(
                try Data(contentsOf: URL(fileURLWithPath: fresh + "/keys/" + name))
                    == Data(contentsOf: URL(fileURLWithPath: state + "/keys/" + name)), "\(name)")
        }
        Self.check(
            try anonreg(["keys", "restore", keysFile, "--state-dir", fresh, "--passphrase-file", right]),
            Expected(
                status: 3, stdout: "",
                stderr: "anonreg: \(fresh)/keys already holds a keyring; pass --force to replace it (the old one is kept beside)\n"),
            "keys restore over an existing keyring")

        // Database backup: success, then each refusal of restore.
        let backup = d.tmp.sub("registry.anrgbak")
        let made = try anonreg(["backup", "create", backup])
        #expect(made.status == 0 && made.stderr == "")
        #expect(
            made.stdout.hasPrefix(
                "wrote \(backup) (mode 0600) and verified it\nfile            \(backup)\nformat          2\nsignature       ok\n"))
        Self.check(
            try anonreg(["backup", "restore", backup]),
            Expected(
                status: 2, stdout: "",
                stderr: """
                    Error: Missing expected argument '--state-dir <state-dir>'
                    Help:  --state-dir <state-dir>  The state directory to restore into (the daemon must be stopped).
                    Usage: anonreg backup restore <file> --state-dir <state-dir> [--keys-dir <keys-dir>] [--database <database>] [--config <config>] [--passphrase-file <passphrase-file>] [--force] [--allow-unsigned] [--json]
                      See 'anonreg backup restore --help' for more information.

                    """),
            "restore usage error")
        Self.check(
            try anonreg(["backup", "restore", backup, "--state-dir", state]),
            Expected(
                status: 3, stdout: "",
                stderr:
                    "anonreg: \(state)/registry.sqlite is open in a running anonregd (or another process); stop it first (systemctl stop anonregd.socket anonregd.service: the socket unit would start it again), then restore\n"
            ),
            "restore under a running daemon")
        // The timer's commands (systemd/anonreg-rotate.service): retire what is unused, destroy
        // what was retired long enough ago.
        #expect(try anonreg(["keys", "rewrap"]).status == 0)
        let retired = try anonreg(["keys", "retire", "--unused"])
        #expect(
            retired.status == 0 && retired.stdout.hasPrefix("retired: 1\nVERSION  STATUS   CREATED"), "\(retired.stdout)\(retired.stderr)")
        let notYet = try anonreg(["keys", "destroy", "--retired-for", "30", "--yes"])
        #expect(notYet.status == 0 && notYet.stdout.hasPrefix("no KEK version was retired 30 or more days ago\n"))
        #expect(FileManager.default.fileExists(atPath: state + "/keys/kek-1.key"))
        let destroyed = try anonreg(["keys", "destroy", "--retired-for", "0", "--yes"])
        #expect(destroyed.status == 0 && destroyed.stdout.hasPrefix("destroyed: 1\n"))
        #expect(!FileManager.default.fileExists(atPath: state + "/keys/kek-1.key"))
        Self.check(
            try anonreg(["keys", "destroy", "--retired-for", "0"]),
            Expected(
                status: 2, stdout: "",
                stderr: """
                    Error: --retired-for needs --yes
                    Usage: anonreg keys destroy [--socket <socket>] [--json] [--lang <lang>] [<version>] [--retired-for <retired-for>] [--yes]
                      See 'anonreg keys destroy --help' for more information.

                    """),
            "a timer's destroy without --yes")
        Self.check(
            try anonreg(["backup", "verify", backup, "--state-dir", state]),
            Expected(
                status: 1,
                stdout: """
                    file            \(backup)
                    format          2
                    signature       ok
                    created         \(try Self.createdAt(backup))
                    subjects        1
                    payload         \(try Self.payloadBytes(backup)) bytes, checksum ok
                    integrity       ok
                    application_id  ok
                    KEK version 1   needed; keyring: destroyed

                    """,
                stderr:
                    "anonreg: this keyring cannot read the backup: KEK version(s) 1 destroyed or missing. A destroyed version cannot come back; restore the keyring backup of that time (anonreg keys restore) if it still exists\n"
            ),
            "verify a backup whose KEK was destroyed")

        #expect(d.stop() == 0)
        let auditEntries = try d.auditEntryCount()
        Self.check(
            try anonreg(["backup", "restore", backup, "--state-dir", state]),
            Expected(
                status: 3, stdout: "",
                stderr:
                    "anonreg: \(state)/registry.sqlite already holds a registry (1 subject(s), \(auditEntries) audit entries); restoring would replace it. Restore into a new state directory, or pass --force\n"
            ),
            "restore into a non-empty database")
        Self.check(
            try anonreg(["backup", "restore", backup, "--state-dir", state, "--force"]),
            Expected(
                status: 3, stdout: "",
                stderr:
                    "anonreg: the keyring in \(state)/keys lacks KEK version(s) 1 that the backup needs; restore the matching keyring backup first (anonreg keys restore)\n"
            ),
            "restore needing a destroyed KEK")
        // Numbering continues at the next billion above every entry number the registry can have
        // issued: the backup's last entry, or the anchor's checkpoint plus one interval
        // (docs/CRYPTO.md §Audit, "Restores").
        let backupLast = Int64(try #require((try Self.header(backup)["auditLog"] as? [String: Any])?["seq"] as? Int))
        let anchorSeq =
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fresh + "/keys/audit-anchor"))) as? [String: Any])??[
                "seq"] as? Int
        let continues = (max(backupLast, anchorSeq.map { Int64($0) + 1000 } ?? 0) / 1_000_000_000 + 1) * 1_000_000_000
        Self.check(
            try anonreg([
                "backup", "restore", backup, "--state-dir", fresh, "--keys-dir", fresh + "/keys", "--database", fresh + "/registry.sqlite",
            ]),
            Expected(
                status: 0,
                stdout: """
                    restored \(backup) (taken \(try Self.createdAt(backup))) into \(fresh)/registry.sqlite
                    signature                    ok
                    subjects in the backup       1
                    erased again by the ledger   0
                    subjects now                 1
                    ledger entries added         0 (from the backup's ledger)
                    audit entry                  \(continues + 1) records the restore; numbering continues after \(continues)

                    """, stderr: ""),
            "restore into an empty state directory")
    }

    /// A header field, read straight from the file (ANRGBAK2 ‖ BE32 n ‖ JSON ‖ signature).
    static func header(_ path: String) throws -> [String: Any] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let n = bytes[8..<12].reduce(0) { $0 << 8 | Int($1) }
        return try JSONSerialization.jsonObject(with: Data(bytes[12..<(12 + n)])) as? [String: Any] ?? [:]
    }
    static func createdAt(_ path: String) throws -> String { try header(path)["createdAt"] as? String ?? "" }
    static func payloadBytes(_ path: String) throws -> Int { try header(path)["payloadBytes"] as? Int ?? -1 }

    /// Issue 21 §3: no hidden `--kdf-strength minimum` on the command line, and no new passphrase
    /// below the floor (12 characters or 4 words); a refusal creates nothing.
    @Test func weakPassphrasesAndTheTestKDFPresetAreRefused() throws {
        let tmp = TemporaryDirectory()
        let weak = tmp.sub("weak")
        let strong = tmp.sub("strong")
        try "hunter2\n".write(toFile: weak, atomically: true, encoding: .utf8)
        try "correct horse battery staple\n".write(toFile: strong, atomically: true, encoding: .utf8)
        chmod(weak, 0o600)
        chmod(strong, 0o600)
        let minimum = try Binaries.run(
            "anonreg", ["init", "--state-dir", tmp.sub("min"), "--passphrase-file", strong, "--kdf-strength", "minimum"])
        #expect(minimum.status == 2, "the test-only Argon2id preset was accepted: \(minimum.stdout)")
        #expect(minimum.stderr.contains("--kdf-strength: interactive, moderate or sensitive"))
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("min")))
        let initWeak = try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("weak-state"), "--passphrase-file", weak])
        #expect(initWeak.status == 2, "\(initWeak.stdout)")
        #expect(
            initWeak.stderr.contains("the passphrase is too weak (7 characters, 1 word(s)): use at least 12 characters, or 4 words"),
            "\(initWeak.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("weak-state")))
        #expect(try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("state")]).status == 0)
        let backupWeak = try Binaries.run(
            "anonreg", ["keys", "backup", tmp.sub("k.anrgkbk"), "--state-dir", tmp.sub("state"), "--passphrase-file", weak])
        #expect(backupWeak.status == 2, "\(backupWeak.stdout)")
        #expect(backupWeak.stderr.contains("too weak"))
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("k.anrgkbk")))
        let backupMinimum = try Binaries.run(
            "anonreg",
            [
                "keys", "backup", tmp.sub("k.anrgkbk"), "--state-dir", tmp.sub("state"),
                "--passphrase-file", strong, "--kdf-strength", "minimum",
            ])
        #expect(backupMinimum.status == 2)
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("k.anrgkbk")))
    }

    /// Issue 21 §3: a FIFO in place of kek-1.key hung anonregd at start, and any FIFO in keys/
    /// hung `anonreg keys backup`. Both now refuse at once, naming it (a hang fails the test
    /// through `timeout`, exit 124, instead of hanging the suite).
    @Test func aFIFOInTheKeysDirectoryIsRefusedNotWaitedOn() throws {
        let d = try DaemonHarness()
        let keys = d.stateDir + "/keys"
        let passphrase = d.tmp.sub("passphrase")
        try "correct horse battery staple\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        #expect(mkfifo(keys + "/stray", 0o600) == 0)
        let backup = try Binaries.runExecutable(
            "/usr/bin/timeout",
            [
                "20", Binaries.path("anonreg"), "keys", "backup", d.tmp.sub("k.anrgkbk"),
                "--state-dir", d.stateDir, "--passphrase-file", passphrase, "--kdf-strength", "interactive",
            ])
        #expect(backup.status == 1, "keys backup with a FIFO in keys/: exit \(backup.status) (124: it hung)")
        #expect(backup.stderr.contains("holds what anonreg did not put there: stray (a FIFO)"), "\(backup.stderr)")
        #expect(!FileManager.default.fileExists(atPath: d.tmp.sub("k.anrgkbk")))
        unlink(keys + "/stray")

        unlink(keys + "/kek-1.key")
        #expect(mkfifo(keys + "/kek-1.key", 0o600) == 0)
        let (status, log) = d.startExpectingRefusal()
        #expect(status == 3, "anonregd with a FIFO for kek-1.key: \(log)")
        #expect(log.contains("kek-1.key (a FIFO)"), "\(log)")
    }
}
