import AnonregTestSupport
import Foundation
import RegistryCrypto
import Testing

@testable import RegistryKeyring

/// A staged KEK version (docs/CRYPTO.md §KEK lifecycle): written and copied to every node before
/// it wraps anything, then promoted, the same key, by the next rotation.
struct KeyringStagingTests {
    @Test func aStagedVersionUnwrapsButWrapsNothing() throws {
        let tmp = TemporaryDirectory()
        let v1 = try Keyring.create(in: tmp.sub("keys"))
        let staged = try v1.stagingKEK()
        #expect(staged.manifest.stagedVersion == 2)
        #expect(staged.primaryKEK.version == 1, "new data keys are still wrapped under version 1")
        #expect(staged.kekEntries.map(\.status) == [.primary, .staged])
        #expect(tmp.mode(of: tmp.sub("keys/kek-2.key")) == 0o600)
        // Loaded again (another node's copy, a restart): the same key, still staged.
        let loaded = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        #expect(loaded.manifest == staged.manifest)
        let same = try loaded.kek(version: 2).bytes.constantTimeEquals(try staged.kek(version: 2).bytes)
        #expect(same)
    }

    /// Fails if a rotation wrote a new key while one was staged: the other nodes hold only the
    /// staged one, and would refuse every write (`keyring_behind`).
    @Test func aRotationPromotesTheStagedKeyItself() throws {
        let tmp = TemporaryDirectory()
        let staged = try Keyring.create(in: tmp.sub("keys")).stagingKEK(now: Date(timeIntervalSince1970: 1_800_000_000))
        let file = tmp.bytes(of: tmp.sub("keys/kek-2.key"))
        let check = staged.manifest.kekCheck(version: 2)
        let promotedAt = Date(timeIntervalSince1970: 1_800_086_400)
        let rotated = try staged.rotatingKEK(now: promotedAt)
        #expect(rotated.primaryKEK.version == 2)
        #expect(rotated.kekEntries.map(\.status) == [.active, .primary])
        #expect(rotated.manifest.stagedVersion == nil)
        #expect(tmp.bytes(of: tmp.sub("keys/kek-2.key")) == file, "the staged key file is kept as it is")
        #expect(rotated.manifest.kekCheck(version: 2) == check)
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("keys/kek-3.key")))
        let entry = try #require(rotated.kekEntries.last)
        #expect(entry.createdAt == Date(timeIntervalSince1970: 1_800_000_000))
        #expect(entry.promotedAt == promotedAt)
        #expect(entry.primarySince == promotedAt, "the primary's age counts from its promotion")
        // With nothing staged, a rotation writes a new version, as before.
        let next = try rotated.rotatingKEK()
        #expect(next.primaryKEK.version == 3)
        #expect(next.kekEntries.last?.promotedAt == nil)
    }

    @Test func aSecondStageIsRefusedAndChangesNothing() throws {
        let tmp = TemporaryDirectory()
        let staged = try Keyring.create(in: tmp.sub("keys")).stagingKEK()
        let manifest = tmp.bytes(of: tmp.sub("keys/keyring.json"))
        #expect {
            try staged.stagingKEK()
        } throws: { error in
            guard case KeyringError.invalidTransition(version: 2, from: .staged, to: .staged, _) = error else { return false }
            return true
        }
        #expect(tmp.bytes(of: tmp.sub("keys/keyring.json")) == manifest)
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("keys/kek-3.key")))
    }

    @Test func aStagedVersionIsNeitherRetiredNorDestroyed() throws {
        let tmp = TemporaryDirectory()
        let staged = try Keyring.create(in: tmp.sub("keys")).stagingKEK()
        #expect(throws: KeyringError.self) { try staged.retiringKEK(version: 2, subjectsUsingIt: 0) }
        #expect(throws: KeyringError.self) { try staged.destroyingKEK(version: 2, subjectsUsingIt: 0) }
        #expect(FileManager.default.fileExists(atPath: tmp.sub("keys/kek-2.key")))
        #expect(try Keyring.load(from: KeyringSource(directory: tmp.sub("keys"))).manifest.stagedVersion == 2)
    }

    /// Someone who can write keyring.json but not forge key files: a staged entry that is not the
    /// newest version (a rotation would then "promote" an old key), two staged entries, or a
    /// staged entry with dates it cannot have, are refused at load, never repaired.
    @Test(arguments: [
        ("oldStaged", "a staged KEK must be the newest version"),
        ("twoStaged", "at most one KEK may be staged"),
        ("stagedPromoted", "a staged KEK has no retire, destroy or promotion date"),
    ])
    func aManifestWithAnImpossibleStagedEntryIsRefused(edit: String, reason: String) throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys")).stagingKEK().rotatingKEK().stagingKEK()
        let path = tmp.sub("keys/keyring.json")
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(tmp.bytes(of: path))) as? [String: Any])
        var keks = try #require(manifest["keks"] as? [[String: Any]])
        #expect(keks.map { $0["status"] as? String } == ["active", "primary", "staged"])
        switch edit {
        case "oldStaged":
            keks[0]["status"] = "staged"
            keks[2]["status"] = "active"
        case "twoStaged":
            keks[0]["status"] = "staged"
        default:
            keks[2]["promotedAt"] = "2026-12-01T00:00:00Z"
        }
        manifest["keks"] = keks
        tmp.write(Array(try JSONSerialization.data(withJSONObject: manifest)), to: path)
        #expect(throws: KeyringError.malformedManifest(path: path, reason: reason)) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        }
    }
}
