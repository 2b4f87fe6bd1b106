import AnonregTestSupport
import Foundation
import RegistryCrypto
import Testing

@testable import RegistryKeyring

struct KeyringCreateLoadTests {
    static let rfcSeed = "a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3"

    @Test func createWritesTheDocumentedLayoutWithStrictModes() throws {
        let tmp = TemporaryDirectory()
        let dir = tmp.sub("keys")
        _ = try Keyring.create(in: dir)
        #expect(tmp.listing(dir) == ["audit-signing.key", "index.key", "kek-1.key", "keyring.json", "oprf-seed.key"])
        #expect(tmp.mode(of: dir) == 0o700)
        for name in tmp.listing(dir) { #expect(tmp.mode(of: dir + "/" + name) == 0o600, "\(name)") }
        let kek = tmp.bytes(of: dir + "/kek-1.key")
        #expect(Array(kek.prefix(9)) == Array("ANRGKEY1".utf8) + [0])
        #expect(kek.count == 9 + 32)
    }

    @Test func loadGivesBackTheSameKeys() throws {
        let tmp = TemporaryDirectory()
        let created = try Keyring.create(in: tmp.sub("keys"))
        let loaded = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        #expect(loaded.manifest == created.manifest)
        #expect(loaded.primaryKEK.version == 1)
        let same = loaded.primaryKEK.key.bytes.constantTimeEquals(created.primaryKEK.key.bytes)
        #expect(same)
        let sameIndex = loaded.codeIndexKey.bytes.constantTimeEquals(created.codeIndexKey.bytes)
        #expect(sameIndex)
        #expect(loaded.oprfKey.publicKey == created.oprfKey.publicKey)
        #expect(loaded.auditSigningKey.publicKey == created.auditSigningKey.publicKey)
        let distinct = loaded.codeIndexKey.bytes.constantTimeEquals(loaded.linkageKey.bytes)
        #expect(!distinct, "subkeys of the index key differ per purpose")
    }

    /// Restoring the OPRF key from its paper seed reproduces RFC 9497 A.1.1's key.
    @Test func oprfSeedRestoresTheRFCKey() throws {
        let tmp = TemporaryDirectory()
        let seed = KeyMaterial(try SecretBytes(hex: Self.rfcSeed), name: "seed")
        let keyring = try Keyring.create(
            in: tmp.sub("keys"), options: .init(oprfSeed: seed, oprfKeyInfo: Array("test key".utf8)))
        // RFC 9497 A.1.1 vector 1: BlindEvaluate of its BlindedElement.
        let evaluated = try keyring.oprfKey.blindEvaluate(
            blindedElement: try Hex.decode("609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c"))
        #expect(Hex.encode(evaluated) == "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e")
        #expect(keyring.manifest.oprf.keyInfo == Hex.encode(Array("test key".utf8)))
    }

    @Test func manifestHoldsNoKeyBytes() throws {
        let tmp = TemporaryDirectory()
        let seed = KeyMaterial(try SecretBytes(hex: Self.rfcSeed), name: "seed")
        let keyring = try Keyring.create(in: tmp.sub("keys"), options: .init(oprfSeed: seed))
        let manifest = String(decoding: tmp.bytes(of: tmp.sub("keys/keyring.json")), as: UTF8.self)
        #expect(!manifest.contains(Self.rfcSeed))
        keyring.primaryKEK.key.bytes.withUnsafeBytes { #expect(!manifest.contains(Hex.encode($0))) }
    }

    @Test func createRefusesANonEmptyDirectory() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        #expect(throws: KeyringError.alreadyExists(path: tmp.sub("keys"))) { try Keyring.create(in: tmp.sub("keys")) }
    }

    @Test func noTemporaryFilesAreLeftBehind() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        _ = try keyring.rotatingKEK()
        #expect(!tmp.listing(tmp.sub("keys")).contains { $0.hasPrefix(".") })
    }

    @Test func descriptionsAreRedacted() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let key = keyring.primaryKEK.key
        let hexKey = key.bytes.withUnsafeBytes { Hex.encode($0) }
        var dumped = ""
        dump(key, to: &dumped)
        for text in [String(describing: key), String(reflecting: key), dumped] {
            #expect(!text.contains(hexKey))
            #expect(text.contains("redacted"))
        }
    }
}

struct KeyringPermissionTests {
    @Test func aKeyFileWithMode0644IsRefusedWithTheFix() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        let path = tmp.sub("keys/kek-1.key")
        chmod(path, 0o644)
        #expect(throws: KeyringError.insecurePermissions(path: path, mode: 0o100644, isDirectory: false)) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        }
        let message = KeyringError.insecurePermissions(path: path, mode: 0o100644, isDirectory: false).description
        #expect(message.contains("chmod 600 \(path)"))
        #expect(message.contains("644"))
    }

    @Test func aManifestWithMode0640IsRefused() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        chmod(tmp.sub("keys/keyring.json"), 0o640)
        #expect(throws: KeyringError.self) { try Keyring.load(from: KeyringSource(directory: tmp.sub("keys"))) }
    }

    @Test func aLooseDirectoryIsRefusedWithTheFix() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        chmod(tmp.sub("keys"), 0o755)
        do {
            _ = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
            Issue.record("a 0755 keys directory was accepted")
        } catch {
            #expect(error.description.contains("chmod 700 \(tmp.sub("keys"))"))
        }
    }

    @Test func symlinkedKeyFilesAreRefused() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        let path = tmp.sub("keys/index.key")
        rename(path, tmp.sub("elsewhere.key"))
        symlink(tmp.sub("elsewhere.key"), path)
        // The keys directory check names it before anything is read (KeyringDirectory).
        #expect(throws: KeyringError.unexpectedFiles(directory: tmp.sub("keys"), entries: ["index.key (a symbolic link)"])) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        }
        // Opened on its own, it is refused as not a regular file.
        #expect(throws: KeyringError.notARegularFile(path: path)) { _ = try SecureFile.readAll(path) }
    }

    @Test func missingKeyringSaysHowToCreateOne() {
        let tmp = TemporaryDirectory()
        do {
            _ = try Keyring.load(from: KeyringSource(directory: tmp.sub("nope")))
            Issue.record("loaded a keyring that does not exist")
        } catch {
            #expect(error == .notFound(path: tmp.sub("nope")))
            #expect(error.description.contains("anonreg init"))
        }
    }

    @Test func malformedManifestsAreRefused() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        let path = tmp.sub("keys/keyring.json")
        let original = tmp.bytes(of: path)
        tmp.write(Array("{not json".utf8), to: path)
        #expect(throws: KeyringError.self) { try Keyring.load(from: KeyringSource(directory: tmp.sub("keys"))) }
        // Two primaries.
        let twoPrimaries = String(decoding: original, as: UTF8.self)
            .replacingOccurrences(
                of: "\"keks\" : [", with: "\"keks\" : [ {\"createdAt\":\"2026-01-01T00:00:00Z\",\"status\":\"primary\",\"version\":9},")
        tmp.write(Array(twoPrimaries.utf8), to: path)
        #expect(throws: KeyringError.malformedManifest(path: path, reason: "exactly one KEK must be primary")) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        }
    }

    @Test func aSwappedOPRFSeedIsDetected() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        _ = try Keyring.create(in: tmp.sub("other"))
        rename(tmp.sub("other/oprf-seed.key"), tmp.sub("keys/oprf-seed.key"))
        #expect(throws: KeyringError.keyMismatch(name: "oprf-seed.key")) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        }
    }

    /// An unsealed index key or KEK swapped for another keyring's is caught by its key check.
    @Test(arguments: ["index.key", "kek-1.key"])
    func aSwappedKeyIsDetected(name: String) throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        _ = try Keyring.create(in: tmp.sub("other"))
        rename(tmp.sub("other/" + name), tmp.sub("keys/" + name))
        #expect(throws: KeyringError.keyMismatch(name: name)) {
            try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        }
    }

    @Test func keyChecksAreIndependentlyComputable() throws {
        // Python: blake2b(b"anonreg/v1/key-check\0kek-1.key", key=bytes(range(32)), digest_size=16)
        let key = try SecretBytes(count: 32) { for i in 0..<32 { $0[i] = UInt8(i) } }
        #expect(try KeyCheck.value(for: key, name: "kek-1.key") == "0944cb7346f531e0c2a67682e72fe62f")
    }

    @Test func aTruncatedKeyFileIsRefused() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        truncate(tmp.sub("keys/kek-1.key"), 20)
        #expect(throws: KeyringError.self) { try Keyring.load(from: KeyringSource(directory: tmp.sub("keys"))) }
    }
}
