import AnonregTestSupport
import Foundation
import Testing

/// Issue 14 §5: `anonreg keys restore --force` killed part-way must leave the keys directory
/// either the old keyring or the restored one, complete, never missing or mixed. The CLI stops
/// itself at named points (`ANONREG_TEST_STOP_AT`, debug builds only) and is SIGKILLed there.
@Suite(.serialized) struct KeyringRestoreCrashTests {
    /// Every file a keyring's manifest names exists beside it (destroyed versions excepted).
    static func complete(_ keys: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: keys + "/keyring.json"),
            let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let keks = manifest["keks"] as? [[String: Any]]
        else { return false }
        let names =
            keks.filter { $0["status"] as? String != "destroyed" }.compactMap { ($0["version"] as? Int).map { "kek-\($0).key" } }
            + ["oprf-seed.key", "index.key", "audit-signing.key"]
        return names.allSatisfy { FileManager.default.fileExists(atPath: keys + "/" + $0) }
    }

    @Test(arguments: ["keyring-restore-staged", "keyring-restore-swapped"])
    func aKilledRestoreLeavesTheOldOrTheNewKeyring(stopAt: String) throws {
        let d = try DaemonHarness()
        try d.start()
        let keys = d.stateDir + "/keys"
        let passphrase = d.tmp.sub("passphrase")
        try "a restore that is killed\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        let backup = d.tmp.sub("keys.anrgkbk")
        let made = try d.anonreg([
            "keys", "backup", backup, "--state-dir", d.stateDir, "--passphrase-file", passphrase, "--kdf-strength", "interactive",
        ])
        #expect(made.status == 0, "\(made.stderr)")
        let backedUp = try String(contentsOfFile: keys + "/keyring.json", encoding: .utf8)
        // The keyring moves on after the backup: a rotation adds kek-2.
        #expect(try d.anonreg(["keys", "rotate"]).status == 0)
        #expect(d.stop() == 0)
        let current = try String(contentsOfFile: keys + "/keyring.json", encoding: .utf8)
        #expect(current != backedUp)

        var env = ProcessInfo.processInfo.environment
        env["ANONREG_TEST_STOP_AT"] = stopAt
        let restore = try Spawned.start(
            Binaries.path("anonreg"),
            [
                "keys", "restore", backup, "--state-dir", d.stateDir, "--passphrase-file", passphrase, "--force",
            ], environment: env)
        #expect(restore.waitUntilStopped(), "the restore never reached \(stopAt)")
        restore.signal(SIGKILL)
        #expect(restore.wait() == 128 + SIGKILL)

        // The keys directory is one whole keyring: the old one or the restored one.
        let after = try? String(contentsOfFile: keys + "/keyring.json", encoding: .utf8)
        #expect(
            after == current || after == backedUp,
            "killed at \(stopAt), the keys directory holds neither keyring: \(d.tmp.listing(d.tmp.path + "/state"))")
        #expect(Self.complete(keys), "killed at \(stopAt), the keyring is missing files")
        // The daemon starts on it.
        try d.start()
        #expect(try d.request("GET", "/v1/health").status == 200)
        d.stop()
        // The next restore names what the killed one left beside (it holds keys).
        let again = try d.anonreg(["keys", "restore", backup, "--state-dir", d.stateDir, "--passphrase-file", passphrase, "--force"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("was left by an interrupted keyring restore"), "\(again.stderr)")
        #expect(try String(contentsOfFile: keys + "/keyring.json", encoding: .utf8) == backedUp)
    }
}
