import AnonregTestSupport
import Foundation
import RegistryCrypto
import Testing

@testable import RegistryKeyring

struct KeyringSealingTests {
    static func phrase(_ s: String) throws -> KeyMaterial {
        let bytes = Array(s.utf8)
        return KeyMaterial(try SecretBytes(count: bytes.count) { $0.copyBytes(from: bytes) }, name: "passphrase")
    }

    static func sealed(_ tmp: TemporaryDirectory, _ passphrase: String = "correct horse") throws -> Keyring {
        try Keyring.create(
            in: tmp.sub("keys"), options: .init(passphrase: try phrase(passphrase), passwordStrength: .minimumForTests))
    }

    @Test func sealedKeyringLoadsWithThePassphrase() throws {
        let tmp = TemporaryDirectory()
        let created = try Self.sealed(tmp)
        #expect(created.isSealed)
        let loaded = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")), passphrase: try Self.phrase("correct horse"))
        let same = loaded.primaryKEK.key.bytes.constantTimeEquals(created.primaryKEK.key.bytes)
        #expect(same)
        #expect(loaded.oprfKey.publicKey == created.oprfKey.publicKey)
    }

    @Test func keyBytesAreNotInTheSealedFiles() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Self.sealed(tmp)
        let file = tmp.bytes(of: tmp.sub("keys/kek-1.key"))
        #expect(file[8] == 0x01)
        #expect(file.count == 9 + 24 + 32 + 16)
        keyring.primaryKEK.key.bytes.withUnsafeBytes { key in
            let needle = Array(key)
            let found = (0...(file.count - needle.count)).contains { Array(file[$0..<($0 + needle.count)]) == needle }
            #expect(!found)
        }
    }

    @Test func aWrongPassphraseFailsCleanly() throws {
        let tmp = TemporaryDirectory()
        _ = try Self.sealed(tmp)
        #expect(throws: KeyringError.wrongPassphrase) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")), passphrase: try Self.phrase("correct horsf"))
        }
    }

    @Test func aMissingPassphraseIsAskedFor() throws {
        let tmp = TemporaryDirectory()
        _ = try Self.sealed(tmp)
        #expect(throws: KeyringError.passphraseRequired) { try Keyring.load(from: KeyringSource(directory: tmp.sub("keys"))) }
    }

    @Test func aPassphraseForAnUnsealedKeyringIsRefused() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        #expect(throws: KeyringError.passphraseNotUsed) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")), passphrase: try Self.phrase("x"))
        }
    }

    @Test func aFlippedByteInASealedFileIsTamperingNotAWrongPassphrase() throws {
        let tmp = TemporaryDirectory()
        _ = try Self.sealed(tmp)
        let path = tmp.sub("keys/index.key")
        var bytes = tmp.bytes(of: path)
        bytes[40] ^= 0x20
        tmp.write(bytes, to: path)
        chmod(path, 0o600)
        #expect(throws: KeyringError.keyFileTampered(path: path)) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")), passphrase: try Self.phrase("correct horse"))
        }
    }

    @Test func aRenamedSealedFileFailsToOpen() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Self.sealed(tmp)
        _ = try keyring.rotatingKEK()
        // Put version 2's file where version 1's belongs.
        rename(tmp.sub("keys/kek-2.key"), tmp.sub("keys/kek-1.key"))
        _ = try? FileManager.default.copyItem(atPath: tmp.sub("keys/kek-1.key"), toPath: tmp.sub("keys/kek-2.key"))
        chmod(tmp.sub("keys/kek-2.key"), 0o600)
        #expect(throws: KeyringError.keyFileTampered(path: tmp.sub("keys/kek-1.key"))) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")), passphrase: try Self.phrase("correct horse"))
        }
    }

    @Test func rotationUnderSealingWritesSealedFiles() throws {
        let tmp = TemporaryDirectory()
        let rotated = try Self.sealed(tmp).rotatingKEK()
        #expect(tmp.bytes(of: tmp.sub("keys/kek-2.key"))[8] == 0x01)
        let loaded = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")), passphrase: try Self.phrase("correct horse"))
        let same = loaded.primaryKEK.key.bytes.constantTimeEquals(rotated.primaryKEK.key.bytes)
        #expect(same)
    }
}

struct KeyringCredentialsTests {
    /// Copies the keys directory into a fake $CREDENTIALS_DIRECTORY the way
    /// `LoadCredential=anonreg-keys:/path/keys` lays it out, with systemd's 0400 modes.
    static func credentialsCopy(of keys: String, into creds: String) throws {
        mkdir(creds, 0o500)
        for name in try FileManager.default.contentsOfDirectory(atPath: keys) {
            let target = creds + "/" + KeyringSource.credentialPrefix + name
            try FileManager.default.copyItem(atPath: keys + "/" + name, toPath: target)
            chmod(target, 0o400)
        }
    }

    @Test func keysComeFromTheCredentialsDirectoryWhenPresent() throws {
        let tmp = TemporaryDirectory()
        let created = try Keyring.create(in: tmp.sub("keys"))
        try Self.credentialsCopy(of: tmp.sub("keys"), into: tmp.sub("creds"))
        // The keys directory itself is gone: only the credentials can supply the keys.
        try FileManager.default.removeItem(atPath: tmp.sub("keys"))
        let source = KeyringSource.fromEnvironment(
            directory: tmp.sub("keys"), environment: ["CREDENTIALS_DIRECTORY": tmp.sub("creds")])
        let loaded = try Keyring.load(from: source)
        let same = loaded.primaryKEK.key.bytes.constantTimeEquals(created.primaryKEK.key.bytes)
        #expect(same)
        #expect(throws: KeyringError.self) { try loaded.rotatingKEK() }
    }

    @Test func thePassphraseCanComeFromACredential() throws {
        let tmp = TemporaryDirectory()
        _ = try KeyringSealingTests.sealed(tmp, "from systemd")
        mkdir(tmp.sub("creds"), 0o500)
        let path = tmp.sub("creds/" + KeyringSource.passphraseCredential)
        tmp.write(Array("from systemd\n".utf8), to: path)
        chmod(path, 0o400)
        let source = KeyringSource.fromEnvironment(
            directory: tmp.sub("keys"), environment: ["CREDENTIALS_DIRECTORY": tmp.sub("creds")])
        let loaded = try Keyring.load(from: source)
        #expect(loaded.isSealed)
        // Still writable: only the passphrase came from systemd.
        _ = try loaded.rotatingKEK()
    }

    /// systemd writes credentials 0400 owned by root and adds an ACL for the service user, which
    /// shows as 0440. That must load; a credential readable by others must not.
    @Test func systemdCredentialModesAreAcceptedButWorldReadableIsNot() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        try Self.credentialsCopy(of: tmp.sub("keys"), into: tmp.sub("creds"))
        for name in try FileManager.default.contentsOfDirectory(atPath: tmp.sub("creds")) {
            chown(tmp.sub("creds/" + name), 0, 0)
            chmod(tmp.sub("creds/" + name), 0o440)
        }
        let source = KeyringSource(directory: tmp.sub("keys"), credentialsDirectory: tmp.sub("creds"))
        _ = try Keyring.load(from: source)
        let leaky = tmp.sub("creds/" + KeyringSource.credentialPrefix + "index.key")
        chmod(leaky, 0o444)
        #expect(throws: KeyringError.insecurePermissions(path: leaky, mode: 0o100444, isDirectory: false)) {
            try Keyring.load(from: source)
        }
    }

    @Test func aLooseKeysDirectoryIsRefusedEvenWhenTheManifestIsACredential() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        mkdir(tmp.sub("creds"), 0o500)
        let manifest = tmp.sub("creds/" + KeyringSource.credentialPrefix + "keyring.json")
        try FileManager.default.copyItem(atPath: tmp.sub("keys/keyring.json"), toPath: manifest)
        chmod(manifest, 0o400)
        chmod(tmp.sub("keys"), 0o755)
        let source = KeyringSource(directory: tmp.sub("keys"), credentialsDirectory: tmp.sub("creds"))
        #expect(throws: KeyringError.insecurePermissions(path: tmp.sub("keys"), mode: 0o40755, isDirectory: true)) {
            try Keyring.load(from: source)
        }
    }

    @Test func aLoosePassphraseFileIsRefused() throws {
        let tmp = TemporaryDirectory()
        _ = try KeyringSealingTests.sealed(tmp, "a credential passphrase")
        mkdir(tmp.sub("creds"), 0o700)
        let path = tmp.sub("creds/" + KeyringSource.passphraseCredential)
        tmp.write(Array("a credential passphrase".utf8), to: path)
        chmod(path, 0o644)
        let source = KeyringSource(directory: tmp.sub("keys"), credentialsDirectory: tmp.sub("creds"))
        #expect(throws: KeyringError.insecurePermissions(path: path, mode: 0o100644, isDirectory: false)) {
            try Keyring.load(from: source)
        }
    }
}

struct KeyringLifecycleTests {
    @Test func rotateRetireDestroy() throws {
        let tmp = TemporaryDirectory()
        let v1 = try Keyring.create(in: tmp.sub("keys"))
        let oldKey = try v1.kek(version: 1)
        let v2 = try v1.rotatingKEK()
        #expect(v2.primaryKEK.version == 2)
        #expect(v2.kekEntries.map(\.status) == [.active, .primary])
        let stillThere = try v2.kek(version: 1).bytes.constantTimeEquals(oldKey.bytes)
        #expect(stillThere, "an active KEK still unwraps")

        // Retiring while subjects use it is refused and names the count.
        do {
            _ = try v2.retiringKEK(version: 1, subjectsUsingIt: 3)
            Issue.record("retired a KEK in use")
        } catch {
            #expect(error.description.contains("3 subject(s) still use it"))
        }
        #expect(try Keyring.load(from: v2.source).kekEntries.map(\.status) == [.active, .primary], "nothing changed")

        let retired = try v2.retiringKEK(version: 1, subjectsUsingIt: 0)
        #expect(retired.kekEntries.first?.status == .retired)
        #expect(retired.kekEntries.first?.retiredAt != nil)

        let destroyed = try retired.destroyingKEK(version: 1, subjectsUsingIt: 0)
        #expect(destroyed.kekEntries.first?.status == .destroyed)
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("keys/kek-1.key")))
        #expect(throws: KeyringError.unknownKEKVersion(1)) { try destroyed.kek(version: 1) }
        // The directory still loads, without version 1.
        let reloaded = try Keyring.load(from: destroyed.source)
        #expect(reloaded.kekEntries.map(\.status) == [.destroyed, .primary])
        #expect(throws: KeyringError.unknownKEKVersion(1)) { try reloaded.kek(version: 1) }
    }

    @Test func thePrimaryCannotBeRetiredAndActiveCannotBeDestroyed() throws {
        let tmp = TemporaryDirectory()
        let v1 = try Keyring.create(in: tmp.sub("keys"))
        #expect(throws: KeyringError.self) { try v1.retiringKEK(version: 1, subjectsUsingIt: 0) }
        let v2 = try v1.rotatingKEK()
        #expect(throws: KeyringError.self) { try v2.destroyingKEK(version: 1, subjectsUsingIt: 0) }
        #expect(throws: KeyringError.self) { try v2.destroyingKEK(version: 2, subjectsUsingIt: 0) }
        #expect(throws: KeyringError.unknownKEKVersion(7)) { try v2.retiringKEK(version: 7, subjectsUsingIt: 0) }
        #expect(FileManager.default.fileExists(atPath: tmp.sub("keys/kek-1.key")))
    }

    @Test func aStaleSnapshotCannotOverwriteANewerManifest() throws {
        let tmp = TemporaryDirectory()
        let first = try Keyring.create(in: tmp.sub("keys"))
        let second = try Keyring.load(from: first.source)
        _ = try first.rotatingKEK()
        #expect(throws: KeyringError.staleSnapshot) { try second.rotatingKEK() }
        #expect(try Keyring.load(from: first.source).kekEntries.count == 2)
    }

    /// A kek-2.key the manifest does not name (left by a rotation that died before its manifest
    /// write, or another node's key copied before its keyring.json) is never overwritten: only a
    /// person can tell which. Once it is removed, the rotation goes ahead.
    @Test func aKeyFileTheManifestDoesNotNameIsNeverOverwritten() throws {
        let tmp = TemporaryDirectory()
        let v1 = try Keyring.create(in: tmp.sub("keys"))
        tmp.write([UInt8](repeating: 7, count: 41), to: tmp.sub("keys/kek-2.key"))
        chmod(tmp.sub("keys/kek-2.key"), 0o600)
        #expect(throws: KeyringError.unnamedKeyFile(name: "kek-2.key")) { try v1.rotatingKEK() }
        #expect(throws: KeyringError.unnamedKeyFile(name: "kek-2.key")) { try v1.stagingKEK() }
        #expect(tmp.bytes(of: tmp.sub("keys/kek-2.key")) == [UInt8](repeating: 7, count: 41))
        #expect(try Keyring.load(from: v1.source).kekEntries.count == 1)
        #expect(unlink(tmp.sub("keys/kek-2.key")) == 0)
        let v2 = try v1.rotatingKEK()
        #expect(v2.primaryKEK.version == 2)
        _ = try Keyring.load(from: v2.source)
    }
}

/// Issue 21 §3: a new passphrase needs at least 12 characters or 4 words (docs/CRYPTO.md
/// §Passphrases); characters are code points, not bytes.
struct PassphraseFloorTests {
    static func passes(_ text: String) -> Bool {
        (try? Passphrase.checkStrength(try KeyringSealingTests.phrase(text))) != nil
    }

    @Test func theFloorIsTwelveCharactersOrFourWords() {
        #expect(!Self.passes("pw"))
        #expect(!Self.passes("elevenchars"))
        #expect(Self.passes("twelve chars"))
        #expect(!Self.passes("a b c"))
        #expect(Self.passes("a b c d"))
        #expect(Self.passes("  tab\tand  new\nline "))
        // 11 Cyrillic letters are 22 bytes: still 11 characters.
        #expect(!Self.passes(String(repeating: "ж", count: 11)))
        #expect(Self.passes(String(repeating: "ж", count: 12)))
    }

    @Test func aWeakPassphraseWritesNothing() throws {
        let tmp = TemporaryDirectory()
        let weak = try KeyringSealingTests.phrase("hunter2")
        #expect(throws: KeyringError.weakPassphrase(characters: 7, words: 1)) {
            _ = try Keyring.create(in: tmp.sub("keys"), options: .init(passphrase: weak, passwordStrength: .minimumForTests))
        }
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("keys")))
        _ = try Keyring.create(in: tmp.sub("plain"))
        #expect(throws: KeyringError.weakPassphrase(characters: 7, words: 1)) {
            _ = try KeyringBackup.create(directory: tmp.sub("plain"), passphrase: weak, strength: .minimumForTests)
        }
    }

    @Test func theMinimumKDFPresetIsNeverACommandLineOption() {
        #expect(PasswordStrength(option: "minimum") == nil)
        #expect(PasswordStrength.options.map(\.rawValue) == ["interactive", "moderate", "sensitive"])
        #expect(PasswordStrength(option: "moderate") == .moderate)
    }
}
