import AnonregTestSupport
import Foundation
import Testing

/// Issue 21 §3, OPRF seed hygiene: the exported seed file is exactly what `init
/// --oprf-seed-file` reads; a seed file others can read is refused; nothing suggests putting
/// the seed in argv; and a CLI process holding keys is neither dumpable nor allowed a core.
@Suite(.serialized) struct OPRFSeedBackupTests {
    static func manifest(_ state: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: state + "/keys/keyring.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func oprf(_ state: String) throws -> [String: String] {
        (try manifest(state)["oprf"] as? [String: Any] ?? [:]).compactMapValues { $0 as? String }
    }

    @Test func theExportedFileRebuildsTheSameOPRFKey() throws {
        let tmp = TemporaryDirectory()
        #expect(try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("a"), "--keys-only"]).status == 0)
        let file = tmp.sub("oprf-seed")
        let export = try Binaries.run("anonreg", ["keys", "export-oprf-seed", "--state-dir", tmp.sub("a"), "--output", file])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(tmp.mode(of: file) == 0o600)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(
            !text.contains("--oprf-seed-hex") && !export.stdout.contains("--oprf-seed-hex"),
            "a command line carrying the seed was suggested")
        #expect(export.stdout.contains("--oprf-seed-file \(file)"))
        let rebuilt = try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("b"), "--keys-only", "--oprf-seed-file", file])
        #expect(rebuilt.status == 0, "init refused the file export-oprf-seed wrote: \(rebuilt.stderr)")
        let a = try Self.oprf(tmp.sub("a"))
        let b = try Self.oprf(tmp.sub("b"))
        #expect(a["publicKey"] != nil && a["publicKey"] == b["publicKey"])
        #expect(a["keyInfo"] == b["keyInfo"])
        // A conflicting --oprf-key-info is refused rather than silently preferred.
        let conflicting = try Binaries.run(
            "anonreg", ["init", "--state-dir", tmp.sub("c"), "--keys-only", "--oprf-seed-file", file, "--oprf-key-info", "other"])
        #expect(conflicting.status == 2, "\(conflicting.stderr)")
    }

    @Test func aSeedFileOthersCanReadIsRefused() throws {
        let tmp = TemporaryDirectory()
        let file = tmp.sub("seed.txt")
        try (String(repeating: "a3", count: 32) + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let loose = try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("s"), "--keys-only", "--oprf-seed-file", file])
        #expect(loose.status == 2, "a 0644 seed file was accepted")
        #expect(loose.stderr.contains("chmod 600"), "\(loose.stderr)")
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("s/keys/keyring.json")))
        // The bare 64 hex digits, 0600: accepted (the older documented form).
        chmod(file, 0o600)
        #expect(try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("s"), "--keys-only", "--oprf-seed-file", file]).status == 0)
        // A mistyped line is refused without being repeated.
        let typo = tmp.sub("typo")
        try "oprf-seed = \(String(repeating: "a3", count: 31))zz\n".write(toFile: typo, atomically: true, encoding: .utf8)
        chmod(typo, 0o600)
        let bad = try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("t"), "--keys-only", "--oprf-seed-file", typo])
        #expect(bad.status == 2 && !bad.stderr.contains("a3a3"), "\(bad.stderr)")
    }

    /// On a terminal the seed is shown with the file form and `--oprf-seed-file`, never argv.
    @Test func theTerminalExportSuggestsNoCommandLineWithTheSeed() throws {
        let tmp = TemporaryDirectory()
        #expect(try Binaries.run("anonreg", ["init", "--state-dir", tmp.sub("a"), "--keys-only"]).status == 0)
        let shown = try Binaries.runExecutable(
            "/usr/bin/script",
            [
                "-q", "-e", "-c",
                "\(Binaries.path("anonreg")) keys export-oprf-seed --state-dir \(tmp.sub("a"))", "/dev/null",
            ])
        #expect(shown.status == 0, "\(shown.stdout)")
        #expect(shown.stdout.contains("oprf-seed = ") && shown.stdout.contains("--oprf-seed-file FILE"))
        #expect(!shown.stdout.contains("--oprf-seed-hex"))
    }

    /// PR_SET_DUMPABLE 0 makes the kernel give /proc/PID to root instead of the process's own
    /// uid; a zero RLIMIT_CORE shows in /proc/PID/limits. The CLI runs as uid 65534 under a core
    /// limit of unlimited and stops itself once its keyring is loaded (ANONREG_TEST_STOP_AT).
    @Test func aCLIProcessHoldingKeysIsNotDumpable() throws {
        let tmp = TemporaryDirectory()
        chmod(tmp.path, 0o755)
        let state = tmp.sub("state")
        mkdir(state, 0o750)
        chown(state, 65534, 65534)
        let asNobody = [
            "/usr/bin/prlimit", "--core=unlimited:unlimited", "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        ]
        let made = try Binaries.runExecutable(
            asNobody[0], Array(asNobody.dropFirst()) + [Binaries.path("anonreg"), "init", "--state-dir", state, "--keys-only"])
        #expect(made.status == 0, "\(made.stderr)")
        var env = ProcessInfo.processInfo.environment
        env["ANONREG_TEST_STOP_AT"] = "cli-keys-loaded"
        let cli = try Spawned.start(
            asNobody[0],
            Array(asNobody.dropFirst()) + [
                Binaries.path("anonreg"), "keys", "export-oprf-seed", "--state-dir", state, "--output", state + "/seed",
            ], environment: env)
        defer {
            cli.signal(SIGKILL)
            cli.wait()
        }
        #expect(cli.waitUntilStopped(timeout: 30), "the CLI never reached its keys")
        var st = stat()
        #expect(stat("/proc/\(cli.pid)/status", &st) == 0)
        #expect(st.st_uid == 0, "/proc/\(cli.pid) belongs to uid \(st.st_uid): the process holding the keyring is dumpable")
        let limits = try String(contentsOfFile: "/proc/\(cli.pid)/limits", encoding: .utf8)
        let core = limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") }.map(String.init) ?? ""
        #expect(core.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).prefix(2) == ["0", "0"], "\(core)")
    }
}
