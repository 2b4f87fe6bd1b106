import AnonregTestSupport
import Foundation
import Testing

/// `anonreg backup create/verify/restore` and `anonreg keys backup/restore` against the real daemon.
@Suite(.serialized) struct BackupTests {
    @Test func backupUnderWriteLoadRestoresAndErasedSubjectsStayErased() throws {
        let started = Date()
        let d = try DaemonHarness(configure: DaemonHarness.loadTestBudgets)
        try d.start()
        defer { d.stop() }
        let anonreg = d.anonreg

        let handles: [String] = try d.parallel(300) { client, i in
            try DaemonHarness.enrolWithCheckup(client, note: "backup-marker-\(i)")
        }

        // The backup is taken while another connection keeps enrolling.
        let stop = StopFlag()
        let loadDone = DispatchSemaphore(value: 0)
        let socket = d.socket
        let loadCount = Counter()
        DispatchQueue.global().async {
            let client = SocketClient(socket: socket)
            while !stop.isSet {
                if (try? client.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()))?.status == 201 { loadCount.add() }
            }
            loadDone.signal()
        }
        while loadCount.value < 20 { usleep(1_000) }
        let file = d.tmp.sub("registry.anrgbak")
        let made = try anonreg(["backup", "create", file, "--json"])
        let duringBackup = loadCount.value
        while loadCount.value < duringBackup + 20 { usleep(1_000) }
        stop.set()
        loadDone.wait()
        #expect(made.status == 0, "\(made.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any])
        let inBackup = try #require(report["subjects"] as? Int)
        #expect(inBackup >= 300 + 20 && inBackup < 300 + loadCount.value, "a consistent snapshot taken mid-load: \(inBackup)")
        var st = stat()
        #expect(stat(file, &st) == 0 && st.st_mode & 0o777 == 0o600)
        // Ciphertext only: no note in the file, and no temporary copy left in the state directory.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        #expect(bytes.range(of: Data("backup-marker-".utf8)) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: d.stateDir).filter { $0.hasPrefix(".backup-") }.isEmpty)
        let verified = try anonreg(["backup", "verify", file, "--state-dir", d.stateDir])
        #expect(verified.status == 0, "\(verified.stderr)")
        #expect(verified.stdout.hasSuffix("\nKEK version 1   needed; keyring: primary\n"))

        // A subject erased after the backup: the ledger records it.
        let victim = 7
        #expect(try d.request("POST", "/v1/cases/\(handles[victim])/withdraw").status == 200)
        let ledger = try String(contentsOfFile: d.stateDir + "/keys/erasure-ledger", encoding: .utf8)
        #expect(ledger.split(separator: "\n").count == 2, "header and one entry")

        // A restore into the live state directory is refused while the daemon holds it.
        let live = try anonreg(["backup", "restore", file, "--state-dir", d.stateDir])
        #expect(live.status == 3)
        #expect(
            live.stderr
                == "anonreg: \(d.stateDir)/registry.sqlite is open in a running anonregd (or another process); stop it first (systemctl stop anonregd.socket anonregd.service: the socket unit would start it again), then restore\n"
        )

        // Keyring backup (taken after the erasure, so its ledger names the victim).
        let passphrase = d.tmp.sub("passphrase")
        try "correct horse battery staple\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
        chmod(passphrase, 0o600)
        let keysFile = d.tmp.sub("keys.anrgkbk")
        let keysBackup = try anonreg([
            "keys", "backup", keysFile, "--state-dir", d.stateDir, "--passphrase-file", passphrase, "--kdf-strength", "interactive",
        ])
        #expect(keysBackup.status == 0, "\(keysBackup.stderr)")

        // A fresh state directory gets the keyring, then the database.
        let fresh = try DaemonHarness()
        let forced = try anonreg(["keys", "restore", keysFile, "--state-dir", fresh.stateDir, "--passphrase-file", passphrase, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        let restored = try anonreg(["backup", "restore", file, "--state-dir", fresh.stateDir, "--json"])
        #expect(restored.status == 0, "\(restored.stderr)")
        let outcome = try #require(try JSONSerialization.jsonObject(with: Data(restored.stdout.utf8)) as? [String: Any])
        #expect(outcome["subjectsInBackup"] as? Int == inBackup)
        #expect(outcome["erasedByLedger"] as? Int == 1)
        #expect(outcome["subjects"] as? Int == inBackup - 1)
        // Restoring again over the now non-empty database is refused without --force.
        let again = try anonreg(["backup", "restore", file, "--state-dir", fresh.stateDir])
        #expect(again.status == 3)
        #expect(again.stderr.hasPrefix("anonreg: \(fresh.stateDir)/registry.sqlite already holds a registry (\(inBackup - 1) subject(s), "))
        #expect(
            again.stderr.hasSuffix(" audit entries); restoring would replace it. Restore into a new state directory, or pass --force\n"))

        // A daemon on the restored copy, with the same keys, reads every record but the erased one.
        try fresh.start()
        defer { fresh.stop() }
        let results: [Int] = try fresh.parallel(handles.count) { client, i in
            let r = try client.request("GET", "/v1/cases/\(handles[i])/checkups")
            if i == victim { return r.status == 404 ? 0 : 1 }
            return r.status == 200 && r.body.contains("\"backup-marker-\(i)\"") ? 0 : 1
        }
        #expect(results.reduce(0, +) == 0)
        let count = try Binaries.runExecutable("/usr/bin/sqlite3", [fresh.stateDir + "/registry.sqlite", "SELECT count(*) FROM subject"])
        #expect(Int(count.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) == inBackup - 1)
        print("e2e: backup under load, keyring backup and restore took \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}

final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    var isSet: Bool { lock.withLock { flag } }
    func set() { lock.withLock { flag = true } }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var value: Int { lock.withLock { n } }
    func add() { lock.withLock { n += 1 } }

    /// docs/CRYPTO.md §Erasure ledger: the database records how far the ledger went; a daemon
    /// start with the ledger cut short or lost is refused (exit 3, a keys problem), and stale
    /// temporary copies in the state directory are removed at start.
    @Test func startRefusesALedgerCutOrLostAndRemovesStaleCopies() throws {
        let d = try DaemonHarness()
        try d.start()
        var handles: [String] = []
        for _ in 0..<2 {
            let r = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
            handles.append(try #require(r.string("case")))
        }
        for handle in handles { #expect(try d.request("POST", "/v1/cases/\(handle)/withdraw").status == 200) }
        #expect(d.stop() == 0)
        let ledger = d.stateDir + "/keys/erasure-ledger"
        let full = try Data(contentsOf: URL(fileURLWithPath: ledger))
        for damaged in [full.prefix(full.count - 98), Data()] {
            if damaged.isEmpty {
                unlink(ledger)
            } else {
                try damaged.write(to: URL(fileURLWithPath: ledger))
                chmod(ledger, 0o600)
            }
            let (status, log) = d.startExpectingRefusal()
            #expect(status == 3, "exit \(status.map(String.init) ?? "none (it started)"):\n\(log)")
            #expect(log.contains("erasure-ledger is not a valid erasure ledger"), "\(log)")
        }
        try full.write(to: URL(fileURLWithPath: ledger))
        chmod(ledger, 0o600)
        let stale = d.stateDir + "/.backup-00112233.sqlite"
        FileManager.default.createFile(atPath: stale, contents: Data("pre-erasure copy".utf8))
        try d.start()
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(d.stop() == 0)
    }
}
