import AnonregTestSupport
import Foundation
import Testing

/// Issue 22 §6: `anonreg keys passphrase` seals an unsealed keyring or changes the passphrase,
/// atomically: a SIGKILL at any moment leaves a keyring that opens with the old passphrase or
/// the new one, never neither, and a disk thief finds no unsealed key left behind.
@Suite(.serialized) struct KeyringPassphraseTests {
    static func passphrase(_ dir: TemporaryDirectory, _ name: String, _ text: String) throws -> String {
        let path = dir.sub(name)
        try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        return path
    }

    /// Which of the passphrase files opens the keyring (`nil` for an unsealed one), by reading the
    /// OPRF seed with it; "none" when none does.
    static func opener(_ stateDir: String, _ candidates: [String?], scratch: TemporaryDirectory) throws -> String {
        for candidate in candidates {
            let out = scratch.sub("seed-\(UUID().uuidString)")
            let r = try Binaries.run(
                "anonreg",
                ["keys", "export-oprf-seed", "--state-dir", stateDir, "--output", out]
                    + (candidate.map { ["--passphrase-file", $0] } ?? []))
            if r.status == 0 { return candidate ?? "unsealed" }
        }
        return "none"
    }

    @Test func sealingKeepsTheDataAndLeavesNoUnsealedKey() throws {
        let d = try DaemonHarness()
        try d.start()
        let handle = try DaemonHarness.enrolWithCheckup(SocketClient(socket: d.socket), note: "before sealing")
        d.stop()
        let plainKEK = Array(d.tmp.bytes(of: d.stateDir + "/keys/kek-1.key").suffix(32))
        #expect(plainKEK.count == 32)
        let new = try Self.passphrase(d.tmp, "new", "correct horse battery staple")

        // Refused while a daemon holds the database.
        try d.start()
        let busy = try Binaries.run(
            "anonreg", ["keys", "passphrase", "--state-dir", d.stateDir, "--new-passphrase-file", new, "--kdf-strength", "interactive"])
        #expect(busy.status == 3, "\(busy.stderr)")
        d.stop()

        let sealed = try Binaries.run(
            "anonreg", ["keys", "passphrase", "--state-dir", d.stateDir, "--new-passphrase-file", new, "--kdf-strength", "interactive"])
        #expect(sealed.status == 0, "\(sealed.stderr)")
        #expect(sealed.stdout.contains("sealed \(d.stateDir)/keys: 4 key files"))
        #expect(d.tmp.filesContaining(plainKEK).isEmpty, "the unsealed KEK is still on disk: \(d.tmp.filesContaining(plainKEK))")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: d.stateDir).filter { $0.contains("passphrase") }
        #expect(leftovers.isEmpty)

        // The daemon needs the credential now, and with it serves the subject sealed before.
        let refused = d.startExpectingRefusal()
        #expect(refused.status == 3)
        #expect(refused.log.contains("systemd credential anonreg-keyring-passphrase"))
        let credentials = d.tmp.sub("credentials")
        mkdir(credentials, 0o700)
        try FileManager.default.copyItem(atPath: new, toPath: credentials + "/anonreg-keyring-passphrase")
        try d.start(environment: ["CREDENTIALS_DIRECTORY": credentials])
        defer { d.stop() }
        #expect(try d.request("GET", "/v1/cases/\(handle)").status == 200)
    }

    @Test func changingThePassphraseRetiresTheOldOne() throws {
        let d = try DaemonHarness()
        let old = try Self.passphrase(d.tmp, "old", "the first passphrase")
        let new = try Self.passphrase(d.tmp, "new", "the second passphrase")
        let wrong = try Self.passphrase(d.tmp, "wrong", "not the passphrase")
        let args = ["keys", "passphrase", "--state-dir", d.stateDir, "--kdf-strength", "interactive"]
        #expect(try Binaries.run("anonreg", args + ["--new-passphrase-file", old]).status == 0)
        let keysBefore = d.tmp.allFiles().filter { $0.contains("/keys/") }.map { d.tmp.bytes(of: $0) }

        let refused = try Binaries.run("anonreg", args + ["--passphrase-file", wrong, "--new-passphrase-file", new])
        #expect(refused.status == 1, "\(refused.stderr)")
        #expect(
            d.tmp.allFiles().filter { $0.contains("/keys/") }.map { d.tmp.bytes(of: $0) } == keysBefore,
            "a wrong passphrase changed the keys")

        let changed = try Binaries.run("anonreg", args + ["--passphrase-file", old, "--new-passphrase-file", new])
        #expect(changed.status == 0, "\(changed.stderr)")
        #expect(changed.stdout.contains("changed the passphrase of"))
        #expect(try Self.opener(d.stateDir, [old, new], scratch: d.tmp) == new)
    }

    /// docs/CRYPTO.md §Passphrases: an admin who seals or re-seals the keyring with a short
    /// passphrase is refused (exit 2) before a key file is touched, as `init` and `keys backup`
    /// refuse one.
    @Test func aWeakNewPassphraseIsRefusedAndNothingChanges() throws {
        let d = try DaemonHarness()
        let weak = try Self.passphrase(d.tmp, "weak", "hunter2")
        let keysBefore = d.tmp.allFiles().filter { $0.contains("/keys/") }.map { d.tmp.bytes(of: $0) }
        let refused = try Binaries.run(
            "anonreg",
            [
                "keys", "passphrase", "--state-dir", d.stateDir, "--kdf-strength", "interactive",
                "--new-passphrase-file", weak,
            ])
        #expect(refused.status == 2, "\(refused.stdout) \(refused.stderr)")
        #expect(
            d.tmp.allFiles().filter { $0.contains("/keys/") }.map { d.tmp.bytes(of: $0) } == keysBefore, "a weak passphrase sealed the keys"
        )
        #expect(!keysBefore.isEmpty)
        #expect(try Self.opener(d.stateDir, [nil, weak], scratch: d.tmp) == "unsealed")
    }

    /// SIGKILL at spread-out moments of the change: the keyring always opens with exactly one of
    /// the two passphrases and verifies; the next run finishes and destroys any leftover.
    @Test func aSIGKILLAtAnyMomentLeavesTheOldOrTheNewKeyring() throws {
        let d = try DaemonHarness()
        try d.start()
        _ = try DaemonHarness.enrolWithCheckup(SocketClient(socket: d.socket), note: "kill test")
        d.stop()
        let a = try Self.passphrase(d.tmp, "a", "passphrase number one")
        let b = try Self.passphrase(d.tmp, "b", "passphrase number two")
        func change(from current: String?, to next: String) -> [String] {
            ["keys", "passphrase", "--state-dir", d.stateDir, "--kdf-strength", "interactive", "--new-passphrase-file", next]
                + (current.map { ["--passphrase-file", $0] } ?? [])
        }
        // How long an uninterrupted change of a sealed keyring takes, to spread the kills over it.
        #expect(try Binaries.run("anonreg", change(from: nil, to: b)).status == 0)
        let t0 = Date()
        #expect(try Binaries.run("anonreg", change(from: b, to: a)).status == 0)
        let duration = Date().timeIntervalSince(t0)
        var current = a
        var outcomes: [String: Int] = [:]
        let kills = 16
        for i in 0..<kills {
            let next = current == a ? b : a
            let child = try Spawned.start(Binaries.path("anonreg"), change(from: current, to: next), environment: nil)
            usleep(useconds_t(duration * 1.3 * Double(i) / Double(kills) * 1_000_000))
            child.signal(SIGKILL)
            let status = child.wait()
            let opens = try Self.opener(d.stateDir, [current, next], scratch: d.tmp)
            #expect(opens == current || opens == next, "kill \(i) (status \(status)) left a keyring that opens with neither passphrase")
            outcomes[opens == current ? "old" : "new", default: 0] += 1
            if opens == next { current = next }
            let audit = try Binaries.run("anonreg", ["audit", "verify", "--state-dir", d.stateDir])
            #expect(audit.status == 0, "kill \(i): \(audit.stderr)")
        }
        // The next run completes and removes what the killed ones left beside the keys.
        let finish = try Binaries.run("anonreg", change(from: current, to: current == a ? b : a))
        #expect(finish.status == 0, "\(finish.stderr)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: d.stateDir).filter { $0.contains("passphrase") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        try FileManager.default.createDirectory(atPath: d.tmp.sub("creds"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: current == a ? b : a, toPath: d.tmp.sub("creds") + "/anonreg-keyring-passphrase")
        try d.start(environment: ["CREDENTIALS_DIRECTORY": d.tmp.sub("creds")])
        defer { d.stop() }
        #expect(try d.request("GET", "/v1/health").status == 200)
        print("keys passphrase kills: \(outcomes) over \(String(format: "%.2f", duration)) s")
    }
}
