import AnonregTestSupport
import Foundation
import Testing

/// The review's attacks on the audit log, on an offline copy of a stopped registry: the chain is
/// unkeyed, so an attacker can recompute it after rewriting entries, and delete the signed
/// checkpoints that would contradict it. Today's `anonreg audit verify` passed both. Now the
/// checkpoint interval, the version-2 checkpoints and the anchor beside the keyring catch them
/// (docs/CRYPTO.md §Audit).
@Suite(.serialized) struct AuditForgeryTests {
    /// A registry with a few dozen audit entries, checkpointed every 10, stopped cleanly.
    static func populated() throws -> DaemonHarness {
        let d = try DaemonHarness { config in
            config.replacingOccurrences(of: "checkpoint_every = 1000", with: "checkpoint_every = 10")
        }
        try d.start()
        for i in 0..<8 {
            let enrol = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody(form: "F-\(i)"))
            let handle = try #require(enrol.string("case"))
            _ = try d.request("POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\"}")
            _ = try d.request("GET", "/v1/cases/\(handle)")
        }
        #expect(d.stop() == 0)
        return d
    }

    static func verify(_ d: DaemonHarness) throws -> Binaries.Result {
        try Binaries.run("anonreg", ["audit", "verify", "--state-dir", d.stateDir])
    }

    /// Rewrites the actor of entries `from...`, recomputing every hash of the unkeyed chain from
    /// there on (docs/CRYPTO.md §Audit gives the canonical form), as an attacker with the file
    /// and no key can.
    static func rewriteChain(_ d: DaemonHarness, from: Int, actor: String) throws {
        let script = """
            import hashlib, sqlite3, struct, sys
            db = sqlite3.connect(sys.argv[1])
            def lp(b): return struct.pack('>I', len(b)) + b
            rows = db.execute('SELECT seq, at, actor, action, result, subject_commit FROM audit_entry ORDER BY seq').fetchall()
            prev = b'\\0' * 32
            for seq, at, who, action, result, commit in rows:
                if seq >= int(sys.argv[2]): who = sys.argv[3]
                canonical = b'anonreg/v1/audit-entry\\0' + struct.pack('>Q', seq) + lp(at.encode()) + lp(who.encode()) \\
                    + lp(action.encode()) + lp(result.encode()) + lp(commit or b'')
                h = hashlib.blake2b(prev + canonical, digest_size=32).digest()
                db.execute('UPDATE audit_entry SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?', (who, prev, h, seq))
                prev = h
            db.commit()
            """
        let file = d.tmp.sub("rewrite.py")
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try Binaries.runExecutable("/usr/bin/python3", [file, d.stateDir + "/registry.sqlite", String(from), actor])
        #expect(r.status == 0, "\(r.stderr)")
    }

    static func sqlite(_ d: DaemonHarness, _ sql: String) throws -> String {
        let r = try Binaries.runExecutable("/usr/bin/sqlite3", [d.stateDir + "/registry.sqlite", sql])
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aCleanLogVerifiesAndTheRewriteIsCaughtWithItsCheckpoints() throws {
        let d = try Self.populated()
        let clean = try Self.verify(d)
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        // The rewrite alone contradicts the signed checkpoints (as before).
        try Self.rewriteChain(d, from: 3, actor: "clinic nobody")
        #expect(try Self.verify(d).status == 1)
    }

    /// The review's attack: rewrite the actors, recompute the chain, delete every checkpoint.
    @Test func rewriteRecomputeAndDeleteTheCheckpointsIsCaught() throws {
        let d = try Self.populated()
        try Self.rewriteChain(d, from: 3, actor: "clinic nobody")
        _ = try Self.sqlite(d, "DELETE FROM audit_checkpoint;")
        let r = try Self.verify(d)
        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stdout.contains("TAMPERED"), "\(r.stdout)")
        // Even with the anchor beside the keyring gone too, the interval rule fails it.
        _ = try Binaries.runExecutable("/bin/rm", ["-f", d.stateDir + "/keys/audit-anchor"])
        let withoutAnchor = try Self.verify(d)
        #expect(withoutAnchor.status == 1, "\(withoutAnchor.stdout)")
        #expect(withoutAnchor.stdout.contains("no signed checkpoint"), "\(withoutAnchor.stdout)")
    }

    /// Delete the checkpoints and cut the tail: the log no longer reaches the anchor.
    @Test func deleteTheCheckpointsAndCutTheTailIsCaught() throws {
        let d = try Self.populated()
        let last = Int(try Self.sqlite(d, "SELECT max(seq) FROM audit_entry")) ?? 0
        _ = try Self.sqlite(d, "DELETE FROM audit_checkpoint WHERE seq > 10; DELETE FROM audit_entry WHERE seq > 12;")
        #expect(last > 20)
        let r = try Self.verify(d)
        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stdout.contains("anchor"), "\(r.stdout)")
        // And the daemon refuses to start on it rather than number new entries over exported ones.
        let refused = d.startExpectingRefusal()
        #expect(refused.status == 4, "\(refused.log)")
        #expect(refused.log.contains("anchor"), "\(refused.log)")
    }

    /// Deleting one checkpoint from the middle breaks the next one's link to it.
    @Test func aCheckpointDeletedFromTheMiddleIsCaught() throws {
        let d = try Self.populated()
        _ = try Self.sqlite(d, "DELETE FROM audit_checkpoint WHERE seq = 10;")
        let r = try Self.verify(d)
        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stdout.contains("deleted"), "\(r.stdout)")
    }

    /// An auditor checks an exported copy with the public key alone (issue 22 §3): the export
    /// carries the signed checkpoints; a copy rewritten and stripped of them fails.
    @Test func anExportVerifiesWithThePublicKeyAloneAndItsForgeryFails() throws {
        let d = try Self.populated()
        try d.start()
        let export = try d.anonreg(["audit", "export"])
        #expect(export.status == 0)
        let keys = try d.request("GET", "/v1/admin/keys")
        let publicKey = try #require(keys.string("auditPublicKey"))
        let tail = try d.anonreg(["audit", "export", "--since", "10"])
        #expect(d.stop() == 0)
        let file = d.tmp.sub("export.jsonl")
        try export.stdout.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(export.stdout.contains("\"type\":\"checkpoint\""))
        let ok = try Binaries.run("anonreg", ["audit", "verify", "--export", file, "--public-key", publicKey, "--interval", "10"])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        // An export of a later part starts at the checkpoint it continues from.
        let later = d.tmp.sub("later.jsonl")
        try tail.stdout.write(toFile: later, atomically: true, encoding: .utf8)
        let partial = try Binaries.run(
            "anonreg", ["audit", "verify", "--export", later, "--keyring-json", d.stateDir + "/keys/keyring.json", "--interval", "10"])
        #expect(partial.status == 0, "\(partial.stdout)\(partial.stderr)")
        // Rewritten actors with the chain recomputed, every checkpoint line dropped.
        let script = """
            import hashlib, json, struct, sys
            def lp(b): return struct.pack('>I', len(b)) + b
            prev = b'\\0' * 32
            out = []
            for line in open(sys.argv[1]):
                o = json.loads(line)
                if o.get('type') == 'checkpoint': continue
                o['actor'] = 'clinic nobody'
                commit = bytes.fromhex(o['subjectCommit']) if o.get('subjectCommit') else b''
                c = b'anonreg/v1/audit-entry\\0' + struct.pack('>Q', o['seq']) + lp(o['at'].encode()) + lp(o['actor'].encode()) \\
                    + lp(o['action'].encode()) + lp(o['result'].encode()) + lp(commit)
                h = hashlib.blake2b(prev + c, digest_size=32).digest()
                o['prevHash'], o['hash'] = prev.hex(), h.hex()
                prev = h
                out.append(json.dumps(o))
            open(sys.argv[2], 'w').write('\\n'.join(out) + '\\n')
            """
        let forge = d.tmp.sub("forge-export.py")
        try script.write(toFile: forge, atomically: true, encoding: .utf8)
        let forged = d.tmp.sub("forged.jsonl")
        #expect(try Binaries.runExecutable("/usr/bin/python3", [forge, file, forged]).status == 0)
        let caught = try Binaries.run("anonreg", ["audit", "verify", "--export", forged, "--public-key", publicKey, "--interval", "10"])
        #expect(caught.status == 1, "\(caught.stdout)")
    }
}
