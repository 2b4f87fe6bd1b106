import AnonregTestSupport
import Foundation
import Testing

/// Restores in the orders that matter, forged backups, a restore killed midway, and a ledger that
/// lost its last newline (docs/CRYPTO.md §Database backups, §Erasure ledger, §Audit).
@Suite(.serialized) struct BackupRestoreTests {
    /// A registry with three subjects (A, B, C), each with a check-up.
    final class Registry: @unchecked Sendable {
        let d: DaemonHarness
        var handles: [String] = []
        var codes: [String] = []
        let passphrase: String

        init() throws {
            d = try DaemonHarness()
            try d.start()
            for name in ["A", "B", "C"] {
                let r = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(form: "FORM-\(name)"))
                handles.append(try #require(r.string("case")))
                codes.append(try #require(r.string("code")))
                _ = try d.request(
                    "POST", "/v1/cases/\(handles.last!)/checkups",
                    body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\",\"note\":\"NOTE-\(name)\"}")
            }
            passphrase = d.tmp.sub("passphrase")
            try "correct horse battery staple\n".write(toFile: passphrase, atomically: true, encoding: .utf8)
            chmod(passphrase, 0o600)
        }

        func databaseBackup(_ name: String) throws -> String {
            let file = d.tmp.sub(name)
            let r = try d.anonreg(["backup", "create", file])
            #expect(r.status == 0, "\(r.stderr)")
            return file
        }

        func keyringBackup(_ name: String) throws -> String {
            let file = d.tmp.sub(name)
            let r = try d.anonreg([
                "keys", "backup", file, "--state-dir", d.stateDir, "--passphrase-file", passphrase, "--kdf-strength", "interactive",
            ])
            #expect(r.status == 0, "\(r.stderr)")
            return file
        }

        func withdraw(_ i: Int) throws {
            #expect(try d.request("POST", "/v1/cases/\(handles[i])/withdraw").status == 200)
        }
    }

    /// A fresh state directory (its own throwaway keyring from `anonreg init`).
    static func fresh() throws -> DaemonHarness { try DaemonHarness() }

    static func run(_ arguments: [String]) throws -> Binaries.Result { try Binaries.run("anonreg", arguments) }

    static func restoreKeys(_ file: String, into h: DaemonHarness, passphrase: String) throws {
        let r = try run(["keys", "restore", file, "--state-dir", h.stateDir, "--passphrase-file", passphrase, "--force"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    @discardableResult
    static func restoreDatabase(_ file: String, into h: DaemonHarness, extra: [String] = []) throws -> [String: Any] {
        let r = try run(["backup", "restore", file, "--state-dir", h.stateDir, "--force", "--json"] + extra)
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    /// Starts the daemon on `h`, checks who is there by code, and that the audit log verifies.
    static func expectSubjects(
        _ h: DaemonHarness, _ registry: Registry, present: [Int], absent: [Int],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        try h.start()
        defer { h.stop() }
        for i in present {
            #expect(
                try h.request("POST", "/v1/self", body: "{\"code\":\"\(registry.codes[i])\"}").status == 200, "subject \(i) is there",
                sourceLocation: sourceLocation)
        }
        for i in absent {
            #expect(
                try h.request("POST", "/v1/self", body: "{\"code\":\"\(registry.codes[i])\"}").status == 404, "subject \(i) stays erased",
                sourceLocation: sourceLocation)
        }
        let verified = try h.anonreg(["audit", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)", sourceLocation: sourceLocation)
    }

    /// Keyring backup, then an erasure, then a database backup; both lost; restored. Today the
    /// older keyring's ledger did not reach the database's recorded state and the restore was
    /// refused. The database backup now carries its ledger.
    @Test func aKeyringBackupOlderThanTheErasureRestoresWithANewerDatabaseBackup() throws {
        let registry = try Registry()
        let olderKeys = try registry.keyringBackup("keys-before.anrgkbk")
        let beforeErasure = try registry.databaseBackup("before.anrgbak")
        try registry.withdraw(1)
        let afterErasure = try registry.databaseBackup("after.anrgbak")
        registry.d.stop()

        let h = try Self.fresh()
        try Self.restoreKeys(olderKeys, into: h, passphrase: registry.passphrase)
        let outcome = try Self.restoreDatabase(afterErasure, into: h)
        #expect(outcome["ledgerEntriesAdded"] as? Int == 1, "the backup's ledger brought the erasure of B")
        try Self.expectSubjects(h, registry, present: [0, 2], absent: [1])
        // And an older database backup restored after it keeps B erased.
        let older = try Self.restoreDatabase(beforeErasure, into: h)
        #expect(older["erasedByLedger"] as? Int == 1)
        try Self.expectSubjects(h, registry, present: [0, 2], absent: [1])
    }

    /// The other order: a database backup older than the erasure, a keyring backup newer.
    @Test func aDatabaseBackupOlderThanTheErasureRestoresWithANewerKeyringBackup() throws {
        let registry = try Registry()
        let beforeErasure = try registry.databaseBackup("before.anrgbak")
        try registry.withdraw(1)
        let newerKeys = try registry.keyringBackup("keys-after.anrgkbk")
        registry.d.stop()

        let h = try Self.fresh()
        try Self.restoreKeys(newerKeys, into: h, passphrase: registry.passphrase)
        let outcome = try Self.restoreDatabase(beforeErasure, into: h)
        #expect(outcome["erasedByLedger"] as? Int == 1)
        try Self.expectSubjects(h, registry, present: [0, 2], absent: [1])
    }

    /// A newer database backup, then an older one restored over it: the erasures the newer one
    /// recorded stay erased, even with the keyring restored from before them.
    @Test func restoringAnOlderBackupAfterANewerOneKeepsTheNewerErasures() throws {
        let registry = try Registry()
        let olderKeys = try registry.keyringBackup("keys-before.anrgkbk")
        let older = try registry.databaseBackup("older.anrgbak")
        try registry.withdraw(1)
        try registry.withdraw(2)
        let newer = try registry.databaseBackup("newer.anrgbak")
        registry.d.stop()

        let h = try Self.fresh()
        try Self.restoreKeys(olderKeys, into: h, passphrase: registry.passphrase)
        try Self.restoreDatabase(newer, into: h)
        let outcome = try Self.restoreDatabase(older, into: h)
        #expect(outcome["erasedByLedger"] as? Int == 2)
        try Self.expectSubjects(h, registry, present: [0], absent: [1, 2])
    }

    /// The review's forgery: `review_on` cleared on every subject of the payload, the payload's
    /// length and checksum recomputed in the header. Today it passed `backup verify` and
    /// `restore --force`. The header's signature fails now; a copy stripped to the unsigned
    /// format 1 is refused without --allow-unsigned, and with it the rows' MACs fail.
    @Test func aForgedBackupWithARecomputedChecksumIsRefused() throws {
        let registry = try Registry()
        let genuine = try registry.databaseBackup("genuine.anrgbak")
        registry.d.stop()
        let forged = registry.d.tmp.sub("forged.anrgbak")
        let unsigned = registry.d.tmp.sub("forged-v1.anrgbak")
        let script = """
            import hashlib, json, sqlite3, struct, sys, tempfile, os
            data = open(sys.argv[1], 'rb').read()
            n = struct.unpack('>I', data[8:12])[0]
            header = json.loads(data[12:12 + n])
            body = data[12 + n + 64:]
            payload, ledger = body[:header['payloadBytes']], body[header['payloadBytes']:]
            path = tempfile.mktemp()
            open(path, 'wb').write(payload)
            db = sqlite3.connect(path); db.execute('UPDATE subject SET review_on = NULL'); db.commit(); db.close()
            payload = open(path, 'rb').read()
            header['payloadBytes'] = len(payload)
            header['payloadChecksum'] = hashlib.blake2b(b'anonreg/v1/backup-payload\\0' + payload, digest_size=32).hexdigest()
            h = json.dumps(header, sort_keys=True, separators=(',', ':')).encode()
            open(sys.argv[2], 'wb').write(b'ANRGBAK2' + struct.pack('>I', len(h)) + h + data[12 + n:12 + n + 64] + payload + ledger)
            header['format'] = 1
            for key in ['ledgerBytes', 'ledgerChecksum', 'auditLog', 'signedBy']: header.pop(key, None)
            h = json.dumps(header, sort_keys=True, separators=(',', ':')).encode()
            open(sys.argv[3], 'wb').write(b'ANRGBAK1' + struct.pack('>I', len(h)) + h + payload)
            """
        let file = registry.d.tmp.sub("forge.py")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        let made = try Binaries.runExecutable("/usr/bin/python3", [file, genuine, forged, unsigned])
        #expect(made.status == 0, "\(made.stderr)")
        let state = registry.d.stateDir
        let dump = try registry.d.registryDump()

        let verified = try Self.run(["backup", "verify", forged, "--state-dir", state])
        #expect(verified.status == 1 && verified.stderr.contains("signature"), "\(verified.stdout)\(verified.stderr)")
        let restored = try Self.run(["backup", "restore", forged, "--state-dir", state, "--force"])
        #expect(restored.status == 1 && restored.stderr.contains("signature"), "\(restored.stderr)")
        let stripped = try Self.run(["backup", "restore", unsigned, "--state-dir", state, "--force"])
        #expect(stripped.status == 3 && stripped.stderr.contains("--allow-unsigned"), "\(stripped.stderr)")
        let allowed = try Self.run(["backup", "restore", unsigned, "--state-dir", state, "--force", "--allow-unsigned"])
        #expect(allowed.status == 1 && allowed.stderr.contains("integrity check"), "\(allowed.stderr)")
        #expect(try registry.d.registryDump() == dump, "nothing was restored")
        // The genuine backup still restores.
        let genuineRestore = try Self.run(["backup", "restore", genuine, "--state-dir", state, "--force"])
        #expect(genuineRestore.status == 0, "\(genuineRestore.stderr)")
    }

    /// A restore SIGKILLed at any moment leaves the old database or the new one, never a mix; the
    /// ledger never loses an entry; a later restore completes and the erased subject stays erased.
    @Test func aRestoreKilledMidwayLosesNothing() throws {
        let registry = try Registry()
        let backup = try registry.databaseBackup("before.anrgbak")
        try registry.withdraw(1)
        registry.d.stop()
        let state = registry.d.stateDir
        let ledgerLines = { () -> Int in
            ((try? String(contentsOfFile: state + "/keys/erasure-ledger", encoding: .utf8)) ?? "").split(separator: "\n").count
        }
        let before = ledgerLines()
        for delay in stride(from: 0, through: 120_000, by: 8_000) {
            let child = try Spawned.start(
                Binaries.path("anonreg"), ["backup", "restore", backup, "--state-dir", state, "--force"],
                environment: ProcessInfo.processInfo.environment, stdout: registry.d.tmp.sub("restore-\(delay).log"))
            usleep(useconds_t(delay))
            child.signal(SIGKILL)
            _ = child.wait()
            #expect(ledgerLines() >= before, "the ledger never loses an entry (killed after \(delay) µs)")
            let check = try Binaries.runExecutable("/usr/bin/sqlite3", [state + "/registry.sqlite", "PRAGMA integrity_check"])
            #expect(
                check.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok",
                "killed after \(delay) µs: \(check.stdout)\(check.stderr)")
        }
        try Self.restoreDatabase(backup, into: registry.d)
        try Self.expectSubjects(registry.d, registry, present: [0, 2], absent: [1])
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.hasPrefix(".restore-") }.isEmpty,
            "the daemon removed what killed restores left")
    }

    /// The review's ledger cases: the ledger lost its final newline, or its last line is torn, and
    /// a backup from before the erasure is restored into a new database. Today a lost newline made
    /// the restore erase nobody, and the withdrawn patient's code opened the record again. A
    /// flipped byte in the last line is refused, touching nothing.
    @Test(arguments: ["lost newline", "torn line", "flipped byte"])
    func aDamagedLedgerTailNeverBringsAnErasedSubjectBack(_ damage: String) throws {
        let registry = try Registry()
        let backup = try registry.databaseBackup("before.anrgbak")
        try registry.withdraw(1)
        registry.d.stop()
        let state = registry.d.stateDir
        let ledger = state + "/keys/erasure-ledger"
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: ledger)))
        switch damage {
        case "lost newline": bytes.removeLast()
        case "torn line": bytes += Array("0123456789abcdef".utf8)
        default: bytes[bytes.count - 10] = bytes[bytes.count - 10] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        }
        try Data(bytes).write(to: URL(fileURLWithPath: ledger))
        let target = registry.d.tmp.sub("new-registry.sqlite")
        if damage == "flipped byte" {
            let r = try Self.run(["backup", "restore", backup, "--state-dir", state, "--database", target, "--json"])
            #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
            #expect(Array(try Data(contentsOf: URL(fileURLWithPath: ledger))) == bytes, "the ledger was left untouched")
            #expect(!FileManager.default.fileExists(atPath: target))
            #expect(registry.d.startExpectingRefusal().status == 3, "the daemon refuses the ledger too")
            return
        }
        // The daemon on the live database starts (completing the entry, or cutting the torn
        // line) and keeps B out.
        try Self.expectSubjects(registry.d, registry, present: [0, 2], absent: [1])
        let r = try Self.run(["backup", "restore", backup, "--state-dir", state, "--database", target, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let outcome = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(outcome["erasedByLedger"] as? Int == 1, "\(damage): the withdrawn subject is erased again")
    }

    /// A backup made by the previous release (format 1, linkage hashes in its rows) restores only
    /// with --allow-unsigned, comes out without any linkage hash, erases again the subject
    /// withdrawn after it, and the registry's audit log records the restore.
    @Test func aPreviousReleaseBackupRestoresCleanWithAllowUnsigned() throws {
        let tmp = TemporaryDirectory()
        let state = tmp.sub("state")
        let fixture = try Fixtures.copyPreviousRelease(to: state)
        let backup = state + "/before-withdrawal.anrg"
        let refused = try Self.run(["backup", "restore", backup, "--state-dir", state, "--force"])
        #expect(refused.status == 3, "\(refused.stderr)")
        let r = try Self.run(["backup", "restore", backup, "--state-dir", state, "--force", "--allow-unsigned", "--json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let outcome = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(outcome["erasedByLedger"] as? Int == 1, "d, withdrawn after the backup")
        let hashes = try #require(fixture["linkage_hashes"] as? [String])
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let bytes = tmp.bytes(of: state + "/registry.sqlite" + suffix)
            for hash in hashes {
                let needle = stride(from: 0, to: hash.count, by: 2).map { UInt8(hash.dropFirst($0).prefix(2), radix: 16)! }
                #expect(!Bytes.contains(bytes, needle), "a linkage hash survived in registry.sqlite\(suffix)")
            }
        }
        let verified = try Self.run(["audit", "verify", "--state-dir", state])
        #expect(verified.status == 0 && verified.stdout.contains("records a restore"), "\(verified.stdout)")
    }

    /// A restore never reuses an audit entry number that an exported copy already holds.
    @Test func theAuditLogNeverForksAcrossARestore() throws {
        let registry = try Registry()
        let backup = try registry.databaseBackup("early.anrgbak")
        for _ in 0..<5 { _ = try registry.d.request("GET", "/v1/cases/\(registry.handles[0])") }
        let exported = try registry.d.anonreg(["audit", "export"]).stdout.split(separator: "\n")
        let exportedMax =
            exported.compactMap { line -> Int? in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["seq"] as? Int
            }.max() ?? 0
        registry.d.stop()
        try Self.restoreDatabase(backup, into: registry.d)
        try registry.d.start()
        _ = try registry.d.request("GET", "/v1/cases/\(registry.handles[0])")
        let after = try registry.d.anonreg(["audit", "export"]).stdout.split(separator: "\n")
        let restore = after.first { $0.contains("\"action\":\"audit-restore\"") }
        #expect(restore != nil)
        let newSeqs = after.compactMap { line -> Int? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                object["action"] as? String != nil, let seq = object["seq"] as? Int
            else { return nil }
            return seq
        }.filter { $0 > exportedMax }
        #expect(!newSeqs.isEmpty)
        let reused = after.compactMap { line -> Int? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let seq = object["seq"] as? Int,
                let at = object["hash"] as? String
            else { return nil }
            return exported.contains { $0.contains("\"seq\":\(seq),") && !$0.contains(at) } ? seq : nil
        }
        #expect(reused.isEmpty, "entry numbers held by the export with different content: \(reused)")
        #expect(registry.d.stop() == 0)
        let verified = try Self.run(["audit", "verify", "--state-dir", registry.d.stateDir])
        #expect(verified.status == 0, "\(verified.stdout)")
    }

    // MARK: - Found by the review of this change

    /// Disaster recovery on a new host: the keyring backup (and its anchor) is older than entries
    /// already exported. The restore's numbering jump keeps every new entry apart from them.
    @Test func theAuditLogNeverForksOnANewHost() throws {
        let registry = try Registry()
        let keys = try registry.keyringBackup("keys.anrgkbk")
        let backup = try registry.databaseBackup("db.anrgbak")
        for _ in 0..<5 { _ = try registry.d.request("GET", "/v1/cases/\(registry.handles[0])") }
        let exported = try registry.d.anonreg(["audit", "export"]).stdout
        registry.d.stop()
        let h = try Self.fresh()
        try Self.restoreKeys(keys, into: h, passphrase: registry.passphrase)
        try Self.restoreDatabase(backup, into: h)
        try h.start()
        _ = try h.request("GET", "/v1/cases/\(registry.handles[0])")
        let after = try h.anonreg(["audit", "export"]).stdout
        #expect(h.stop() == 0)
        var old: [Int: String] = [:]
        for line in exported.split(separator: "\n") where line.contains("\"type\":\"entry\"") {
            if let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let seq = o["seq"] as? Int {
                old[seq] = o["hash"] as? String
            }
        }
        for line in after.split(separator: "\n") where line.contains("\"type\":\"entry\"") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let seq = o["seq"] as? Int,
                let hash = old[seq]
            else { continue }
            #expect(hash == o["hash"] as? String, "entry \(seq) has two different contents")
        }
    }

    /// A restore into another database file beside the registry's moves nothing: the live daemon
    /// keeps starting on its own database.
    @Test func aSideRestoreLeavesTheLiveRegistryServing() throws {
        let registry = try Registry()
        let backup = try registry.databaseBackup("db.anrgbak")
        registry.d.stop()
        let anchor = try Data(contentsOf: URL(fileURLWithPath: registry.d.stateDir + "/keys/audit-anchor"))
        let side = registry.d.stateDir + "/inspect.sqlite"
        let r = try Self.run(["backup", "restore", backup, "--state-dir", registry.d.stateDir, "--database", side])
        #expect(r.status == 0 && r.stderr.contains("was not moved"), "\(r.stdout)\(r.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: registry.d.stateDir + "/keys/audit-anchor")) == anchor)
        try Self.expectSubjects(registry.d, registry, present: [0, 1, 2], absent: [])
    }

    /// A restore killed after the new database was installed but before the anchor moved: the
    /// daemon accepts the signed restore entry that continues after the anchor, and moves it.
    @Test func aRestoreKilledBeforeItsAnchorMovedStillStarts() throws {
        let registry = try Registry()
        let backup = try registry.databaseBackup("db.anrgbak")
        registry.d.stop()
        let anchorPath = registry.d.stateDir + "/keys/audit-anchor"
        let before = try Data(contentsOf: URL(fileURLWithPath: anchorPath))
        try Self.restoreDatabase(backup, into: registry.d)
        try before.write(to: URL(fileURLWithPath: anchorPath))  // as if killed before the anchor write
        chmod(anchorPath, 0o600)
        try Self.expectSubjects(registry.d, registry, present: [0, 1, 2], absent: [])
        #expect(try Data(contentsOf: URL(fileURLWithPath: anchorPath)) != before, "the daemon moved the anchor to the restore")
    }

    /// `backup verify` of a signed backup without a key to check the signature with fails.
    @Test func verifyingWithoutAKeySaysTheSignatureWasNotChecked() throws {
        let registry = try Registry()
        let backup = try registry.databaseBackup("db.anrgbak")
        let publicKey = try #require(try registry.d.request("GET", "/v1/admin/keys").string("auditPublicKey"))
        registry.d.stop()
        let bare = try Self.run(["backup", "verify", backup])
        #expect(bare.status == 1 && bare.stderr.contains("not checked"), "\(bare.stdout)\(bare.stderr)")
        #expect(try Self.run(["backup", "verify", backup, "--public-key", publicKey]).status == 0)
    }
}
