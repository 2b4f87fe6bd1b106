import AnonregTestSupport
import Foundation
import Testing

/// The daily backup (`anonreg backup scheduled`, run by anonreg-backup.service) and the monthly
/// trial restore (`anonreg backup verify --trial-restore`), docs/OPERATIONS.md §Backups.
@Suite(.serialized) struct ScheduledBackupTests {
    static func files(_ dir: String, _ prefix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
    }

    @Test func dailyBackupsKeepTheNewestAndAKeyringBackupWhenTheKeyringChanged() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        _ = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        let dir = d.tmp.sub("backups")
        mkdir(dir, 0o700)
        let passphrase = d.tmp.sub("passphrase")
        try "correct horse battery staple\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        let run = {
            try d.anonreg([
                "backup", "scheduled", "--to", dir, "--keep", "2", "--state-dir", d.stateDir,
                "--passphrase-file", passphrase, "--kdf-strength", "interactive",
            ])
        }
        for _ in 0..<3 {
            let r = try run()
            #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
            usleep(1_100_000)
        }
        #expect(Self.files(dir, "registry-").count == 2, "the newest two are kept")
        #expect(Self.files(dir, "keys-").count == 1, "one keyring backup while the keyring is unchanged")
        #expect(try d.anonreg(["keys", "rotate"]).status == 0)
        let afterRotation = try run()
        #expect(afterRotation.status == 0 && afterRotation.stdout.contains("the keyring changed"), "\(afterRotation.stdout)")
        #expect(Self.files(dir, "keys-").count == 2)
        // A directory others can read is refused.
        chmod(dir, 0o755)
        #expect(try run().status == 3)
        chmod(dir, 0o700)

        // The monthly drill on the newest pair: everything opens, nothing is left behind.
        let scratch = d.tmp.sub("tmpdir")
        mkdir(scratch, 0o700)
        var env = d.cliEnvironment
        env["TMPDIR"] = scratch
        let newest = dir + "/" + Self.files(dir, "registry-").last!
        let keys = dir + "/" + Self.files(dir, "keys-").last!
        let trial = try Binaries.run(
            "anonreg",
            [
                "backup", "verify", newest, "--trial-restore", "--keyring-backup", keys,
                "--passphrase-file", passphrase,
            ], environment: env)
        #expect(trial.status == 0, "\(trial.stdout)\(trial.stderr)")
        #expect(
            trial.stdout.contains("a real restore would succeed") && trial.stdout.contains("opened                      1"),
            "\(trial.stdout)")
        #expect(Self.files(scratch, "").isEmpty, "nothing left in TMPDIR")
        // With the keyring backup of another registry it fails, and still leaves nothing.
        let other = try DaemonHarness()
        let otherKeys = d.tmp.sub("other.anrgkbk")
        #expect(
            try Binaries.run(
                "anonreg",
                [
                    "keys", "backup", otherKeys, "--state-dir", other.stateDir, "--passphrase-file", passphrase,
                    "--kdf-strength", "interactive",
                ]
            ).status == 0)
        let wrong = try Binaries.run(
            "anonreg",
            [
                "backup", "verify", newest, "--trial-restore", "--keyring-backup", otherKeys,
                "--passphrase-file", passphrase,
            ], environment: env)
        #expect(wrong.status != 0)
        #expect(Self.files(scratch, "").isEmpty, "nothing left in TMPDIR after a failure")
        // Interrupted (during the keyring backup's Argon2id): nothing left either.
        let slowKeys = d.tmp.sub("slow.anrgkbk")
        #expect(
            try d.anonreg([
                "keys", "backup", slowKeys, "--state-dir", d.stateDir, "--passphrase-file", passphrase,
                "--kdf-strength", "sensitive",
            ]).status == 0)
        let child = try Spawned.start(
            Binaries.path("anonreg"),
            [
                "backup", "verify", newest, "--trial-restore", "--keyring-backup", slowKeys,
                "--passphrase-file", passphrase,
            ], environment: env)
        usleep(700_000)
        child.signal(SIGINT)
        #expect(child.wait() != 0)
        #expect(Self.files(scratch, "").isEmpty, "nothing left in TMPDIR after SIGINT")
    }
}
