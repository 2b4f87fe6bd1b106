import Testing

@testable import RegistryCrypto

struct Ed25519Tests {
    struct File: Decodable { let testGroups: [Group] }
    struct Group: Decodable {
        let publicKey: PublicKey
        let tests: [Case]
    }
    struct PublicKey: Decodable { let pk: String }
    struct Case: Decodable {
        let tcId: Int
        let msg, sig, result: String
    }
    struct Flat: Sendable, CustomTestStringConvertible {
        let tcId: Int
        let pk, msg, sig, result: String
        var testDescription: String { "tcId \(tcId) (\(result))" }
    }

    static let cases: [Flat] = {
        let file = try! VectorFiles.load(File.self, "wycheproof/ed25519_test.json")
        return file.testGroups.flatMap { g in
            g.tests.map { Flat(tcId: $0.tcId, pk: g.publicKey.pk, msg: $0.msg, sig: $0.sig, result: $0.result) }
        }
    }()

    @Test func wycheproofHasEveryCase() { #expect(Self.cases.count == 151) }

    /// Every Wycheproof Ed25519 verify case: valid ones verify, invalid ones do not.
    @Test(arguments: cases)
    func wycheproof(_ c: Flat) {
        let ok = Ed25519.verify(signature: hex(c.sig), message: hex(c.msg), publicKey: hex(c.pk))
        #expect(ok == (c.result == "valid"))
    }

    /// RFC 8032 §7.1, TEST 1.
    @Test func rfc8032Vector1() throws {
        let key = try Ed25519SigningKey(seed: try SecretBytes(hex: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        #expect(Hex.encode(key.publicKey) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        let signature = try key.sign([])
        #expect(
            Hex.encode(signature)
                == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        )
        #expect(Ed25519.verify(signature: signature, message: [], publicKey: key.publicKey))
        #expect(!Ed25519.verify(signature: signature, message: [0], publicKey: key.publicKey))
    }

    @Test func descriptionIsRedacted() throws {
        let key = try Ed25519SigningKey(seed: try SecretBytes(hex: String(repeating: "ab", count: 32)))
        #expect(!String(describing: key).contains("abab"))
        #expect(String(describing: key).contains("redacted"))
    }

    @Test func wrongLengthsAreInvalidNotCrashes() {
        #expect(!Ed25519.verify(signature: [1, 2], message: [], publicKey: [UInt8](repeating: 0, count: 32)))
        #expect(!Ed25519.verify(signature: [UInt8](repeating: 0, count: 64), message: [], publicKey: [1]))
    }
}
