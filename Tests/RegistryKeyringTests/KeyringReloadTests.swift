import AnonregTestSupport
import Foundation
import RegistryCrypto
import Testing

@testable import RegistryKeyring

/// `reloadingKEKs` (SIGHUP): a node takes up a KEK version staged or rotated on another node
/// and copied into its keys directory, and refuses every other change to the keys directory.
struct KeyringReloadTests {
    /// Node A and node B with copies of one keyring; B is `loaded` from its own directory.
    struct TwoNodes {
        let tmp = TemporaryDirectory()
        let a: Keyring
        let b: Keyring
        var dirA: String { tmp.sub("a") }
        var dirB: String { tmp.sub("b") }

        init() throws {
            a = try Keyring.create(in: tmp.sub("a"))
            let copy = try Binaries.runExecutable("/bin/cp", ["-a", tmp.sub("a"), tmp.sub("b")])
            guard copy.status == 0 else { throw KeyringError.io(path: tmp.sub("b"), operation: "cp", errno: EIO) }
            b = try Keyring.load(from: KeyringSource(directory: tmp.sub("b")))
        }

        /// Copies `names` from A's directory into B's, as an operator would (`cp -a`).
        func copyToB(_ names: [String]) throws {
            let copy = try Binaries.runExecutable("/bin/cp", ["-a"] + names.map { dirA + "/" + $0 } + [dirB + "/"])
            #expect(copy.status == 0, "\(copy.stderr)")
        }
    }

    @Test func aVersionStagedAndRotatedOnAnotherNodeIsTakenUp() throws {
        let nodes = try TwoNodes()
        #expect(try nodes.b.reloadingKEKs() === nodes.b, "an unchanged directory gives the same snapshot")
        let staged = try nodes.a.stagingKEK()
        try nodes.copyToB(["kek-2.key", "keyring.json"])
        let b2 = try nodes.b.reloadingKEKs()
        #expect(b2.manifest.stagedVersion == 2)
        #expect(b2.primaryKEK.version == 1)
        let same = try b2.kek(version: 2).bytes.constantTimeEquals(try staged.kek(version: 2).bytes)
        #expect(same)
        let sameIndex = b2.codeIndexKey.bytes.constantTimeEquals(nodes.b.codeIndexKey.bytes)
        #expect(sameIndex)

        _ = try staged.rotatingKEK()
        try nodes.copyToB(["keyring.json"])
        let b3 = try b2.reloadingKEKs()
        #expect(b3.primaryKEK.version == 2)
        // B's snapshot is the directory's again: its own lifecycle changes are not stale.
        #expect(try b3.stagingKEK().manifest.stagedVersion == 3)
    }

    /// Fails if a reload took up another keyring: every patient code, case link and audit
    /// reference is keyed by the index key, so a daemon must never switch it on a signal.
    @Test func anotherKeyringIsRefusedAndChangesNothing() throws {
        let nodes = try TwoNodes()
        let other = TemporaryDirectory()
        _ = try Keyring.create(in: other.sub("keys"))
        let copy = try Binaries.runExecutable(
            "/bin/cp", ["-a", other.sub("keys/keyring.json"), other.sub("keys/index.key"), other.sub("keys/kek-1.key"), nodes.dirB + "/"])
        #expect(copy.status == 0)
        #expect {
            try nodes.b.reloadingKEKs()
        } throws: { error in
            guard case KeyringError.reloadRefused = error else { return false }
            return true
        }
    }

    /// Someone swaps kek-1.key and its key check in keyring.json together (a coherent swap that
    /// loading would accept): the running daemon must not keep using one key while its manifest
    /// names another. Fails without the check that a held version's key check is unchanged.
    @Test func aHeldVersionSwappedForAnotherKeyIsRefused() throws {
        let nodes = try TwoNodes()
        let other = TemporaryDirectory()
        let otherKeyring = try Keyring.create(in: other.sub("keys"))
        let path = nodes.dirB + "/keyring.json"
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var checks = try #require(manifest["keyChecks"] as? [String: String])
        checks["kek-1.key"] = otherKeyring.manifest.kekCheck(version: 1)
        manifest["keyChecks"] = checks
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", other.sub("keys/kek-1.key"), nodes.dirB + "/"])
        #expect(copy.status == 0)
        #expect(throws: KeyringError.reloadRefused(reason: "kek-1.key is another key than the one loaded; restart anonregd to load it")) {
            try nodes.b.reloadingKEKs()
        }
    }

    @Test func aNewKeyFileThatIsNotTheManifestsKeyIsRefused() throws {
        let nodes = try TwoNodes()
        _ = try nodes.a.stagingKEK()
        try nodes.copyToB(["keyring.json"])
        // B gets A's manifest but a kek-2.key of its own making: not the key A staged.
        let other = TemporaryDirectory()
        _ = try Keyring.create(in: other.sub("keys")).stagingKEK()
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", other.sub("keys/kek-2.key"), nodes.dirB + "/"])
        #expect(copy.status == 0)
        #expect(throws: KeyringError.keyMismatch(name: "kek-2.key")) { try nodes.b.reloadingKEKs() }
    }

    @Test func aVersionGoneFromTheManifestIsRefused() throws {
        let nodes = try TwoNodes()
        let b2 = try nodes.b.rotatingKEK()
        let path = nodes.dirB + "/keyring.json"
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        manifest["keks"] = try #require(manifest["keks"] as? [[String: Any]]).filter { ($0["version"] as? Int) == 2 }
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
        #expect(throws: KeyringError.reloadRefused(reason: "KEK version 1 is gone from keyring.json")) { try b2.reloadingKEKs() }
    }

    /// Node A retires and destroys version 1; A's keyring.json copied to B names it destroyed.
    /// B's copy of kek-1.key is still on its disk: a reload must not take that up as if B's key
    /// were gone. Its own destroy (after a restart) overwrites and removes it. Fails if a reload
    /// took up the destroyed status.
    @Test func aHeldVersionDestroyedElsewhereIsRefusedUntilThisNodeDestroysItsCopy() throws {
        let nodes = try TwoNodes()
        let a2 = try nodes.a.rotatingKEK()
        try nodes.copyToB(["kek-2.key", "keyring.json"])
        let b2 = try nodes.b.reloadingKEKs()
        #expect(b2.primaryKEK.version == 2)
        _ = try a2.retiringKEK(version: 1, subjectsUsingIt: 0).destroyingKEK(version: 1, subjectsUsingIt: 0)
        #expect(!FileManager.default.fileExists(atPath: nodes.dirA + "/kek-1.key"))
        try nodes.copyToB(["keyring.json"])
        #expect(
            throws: KeyringError.reloadRefused(
                reason:
                    "keyring.json names KEK version 1 destroyed, but this node's kek-1.key is not: restart anonregd, then run `anonreg keys destroy 1` on this node"
            )
        ) { try b2.reloadingKEKs() }
        #expect(FileManager.default.fileExists(atPath: nodes.dirB + "/kek-1.key"))
        // Restarted, B loads (the destroyed version is skipped), and its own destroy finishes.
        let restarted = try Keyring.load(from: KeyringSource(directory: nodes.dirB))
        _ = try restarted.destroyingKEK(version: 1, subjectsUsingIt: 0)
        #expect(!FileManager.default.fileExists(atPath: nodes.dirB + "/kek-1.key"))
    }

    @Test func anotherPassphrasesSealingIsRefused() throws {
        let nodes = try TwoNodes()
        let path = nodes.dirB + "/keyring.json"
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        manifest["sealing"] = ["check": "00", "kdf": ["algorithm": "argon2id13", "opsLimit": 3, "memLimit": 67_108_864, "salt": "00"]]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
        #expect {
            try nodes.b.reloadingKEKs()
        } throws: { error in
            // Refused: as malformed if the sealing does not decode, or as another passphrase's.
            if case KeyringError.reloadRefused(let reason) = error { return reason.contains("another passphrase") }
            if case KeyringError.malformedManifest = error { return true }
            return false
        }
    }

    /// A new key file readable by others is refused by a reload as by a load: the directory's
    /// rules hold on SIGHUP too.
    @Test func aNewKeyFileWithLooseModeIsRefused() throws {
        let nodes = try TwoNodes()
        _ = try nodes.a.stagingKEK()
        try nodes.copyToB(["kek-2.key", "keyring.json"])
        #expect(chmod(nodes.dirB + "/kek-2.key", 0o644) == 0)
        #expect {
            try nodes.b.reloadingKEKs()
        } throws: { error in
            guard case KeyringError.insecurePermissions = error else { return false }
            return true
        }
    }

    /// A passphrase-sealed keyring: the reload opens the new, sealed key file with the sealing
    /// key the daemon derived at start (no passphrase is asked again), and the key is the one
    /// node A staged.
    @Test func aSealedKeyringTakesUpASealedVersion() throws {
        let tmp = TemporaryDirectory()
        let a = try KeyringSealingTests.sealed(tmp)
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", tmp.sub("keys"), tmp.sub("b")])
        #expect(copy.status == 0)
        let b = try Keyring.load(from: KeyringSource(directory: tmp.sub("b")), passphrase: try KeyringSealingTests.phrase("correct horse"))
        let staged = try a.stagingKEK()
        let files = try Binaries.runExecutable(
            "/bin/cp", ["-a", tmp.sub("keys/kek-2.key"), tmp.sub("keys/keyring.json"), tmp.sub("b") + "/"])
        #expect(files.status == 0)
        let b2 = try b.reloadingKEKs()
        #expect(b2.manifest.stagedVersion == 2)
        let same = try b2.kek(version: 2).bytes.constantTimeEquals(try staged.kek(version: 2).bytes)
        #expect(same)
    }
}
