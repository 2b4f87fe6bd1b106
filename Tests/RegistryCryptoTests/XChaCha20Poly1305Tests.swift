import Testing

@testable import RegistryCrypto

struct XChaCha20Poly1305Tests {
    struct File: Decodable { let testGroups: [Group] }
    struct Group: Decodable {
        let ivSize: Int
        let tests: [Case]
    }
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        let tcId: Int
        let key, iv, aad, msg, ct, tag, result: String
        var testDescription: String { "tcId \(tcId) (\(result))" }
    }

    /// Every Wycheproof case with a 192-bit nonce (libsodium's only nonce size).
    static let cases: [Case] = {
        let file = try! VectorFiles.load(File.self, "wycheproof/xchacha20_poly1305_test.json")
        return file.testGroups.filter { $0.ivSize == 192 }.flatMap(\.tests)
    }()

    @Test func wycheproofHasTheExpectedCases() { #expect(Self.cases.count == 306) }

    @Test(arguments: cases)
    func wycheproof(_ c: Case) throws {
        let key = try SecretBytes(hex: c.key)
        let body = hex(c.ct) + hex(c.tag)
        if c.result == "valid" {
            let sealed = try XChaCha20Poly1305.sealDetachedNonce(hex(c.msg), nonce: hex(c.iv), associatedData: hex(c.aad), key: key)
            #expect(sealed == body)
            let opened = try XChaCha20Poly1305.openDetachedNonce(body, nonce: hex(c.iv), associatedData: hex(c.aad), key: key)
            #expect(opened == hex(c.msg))
        } else {
            #expect(throws: CryptoError.authenticationFailed) {
                try XChaCha20Poly1305.openDetachedNonce(body, nonce: hex(c.iv), associatedData: hex(c.aad), key: key)
            }
        }
    }

    @Test func roundTripWithGeneratedNonce() throws {
        let key = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let message = Array("clinician note".utf8)
        let a = try XChaCha20Poly1305.seal(message, associatedData: [1], key: key)
        let b = try XChaCha20Poly1305.seal(message, associatedData: [1], key: key)
        #expect(a.count == message.count + XChaCha20Poly1305.overheadBytes)
        #expect(a.prefix(XChaCha20Poly1305.nonceBytes) != b.prefix(XChaCha20Poly1305.nonceBytes), "fresh nonce per seal")
        #expect(try XChaCha20Poly1305.open(a, associatedData: [1], key: key) == message)
    }

    @Test func wrongAssociatedDataFails() throws {
        let key = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let sealed = try XChaCha20Poly1305.seal(Array("x".utf8), associatedData: Array("subject-a|record-1".utf8), key: key)
        #expect(throws: CryptoError.authenticationFailed) {
            try XChaCha20Poly1305.open(sealed, associatedData: Array("subject-b|record-1".utf8), key: key)
        }
    }

    @Test func wrongKeyFails() throws {
        let sealed = try XChaCha20Poly1305.seal([1, 2, 3], associatedData: [], key: try SecretBytes.random(count: 32))
        #expect(throws: CryptoError.authenticationFailed) {
            try XChaCha20Poly1305.open(sealed, associatedData: [], key: try SecretBytes.random(count: 32))
        }
    }

    @Test func everyTruncationFails() throws {
        let key = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let sealed = try XChaCha20Poly1305.seal(Array("a longer plaintext".utf8), associatedData: [], key: key)
        for length in 0..<sealed.count {
            #expect(throws: CryptoError.authenticationFailed) {
                try XChaCha20Poly1305.open(Array(sealed.prefix(length)), associatedData: [], key: key)
            }
        }
    }

    @Test func everyFlippedBitFails() throws {
        let key = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let sealed = try XChaCha20Poly1305.seal([9, 8, 7, 6], associatedData: [0], key: key)
        for index in sealed.indices {
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(throws: CryptoError.authenticationFailed) {
                try XChaCha20Poly1305.open(tampered, associatedData: [0], key: key)
            }
        }
    }

    @Test func secretRoundTripStaysInSecureMemory() throws {
        let kek = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let dek = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let wrapped = try XChaCha20Poly1305.seal(secret: dek, associatedData: [7], key: kek)
        let unwrapped = try XChaCha20Poly1305.openSecret(wrapped, associatedData: [7], key: kek)
        let same1 = unwrapped.constantTimeEquals(dek)
        #expect(same1)
        #expect(throws: CryptoError.authenticationFailed) {
            try XChaCha20Poly1305.openSecret(wrapped, associatedData: [8], key: kek)
        }
    }

    @Test func wrongKeyLengthIsATypedError() throws {
        #expect(throws: CryptoError.invalidLength(what: "aead key", expected: 32, actual: 16)) {
            try XChaCha20Poly1305.seal([1], associatedData: [], key: try SecretBytes.random(count: 16))
        }
    }
}
