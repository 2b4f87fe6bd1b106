import Testing

@testable import RegistryCrypto

struct PasswordKeyTests {
    static func passphrase(_ s: String) throws -> SecretBytes {
        let bytes = Array(s.utf8)
        return try SecretBytes(count: bytes.count) { $0.copyBytes(from: bytes) }
    }

    /// Cross-checked with argon2-cffi's reference implementation (Argon2id v19, p=1).
    @Test func argon2idKnownAnswer() throws {
        let params = PasswordKDFParameters(
            algorithm: "argon2id13", salt: "000102030405060708090a0b0c0d0e0f", opsLimit: 2, memLimit: 8192 * 1024)
        let key = try PasswordKey.derive(passphrase: try Self.passphrase("correct horse battery staple"), parameters: params, length: 32)
        key.withUnsafeBytes { #expect(Hex.encode($0) == "a891dd91a3d123add6ea78ceedcc94a7f1dc1e4ca480e57e6f240a113662ea2f") }
    }

    @Test func differentPassphrasesGiveDifferentKeys() throws {
        let params = try PasswordKDFParameters.generate(strength: .minimumForTests)
        let a = try PasswordKey.derive(passphrase: try Self.passphrase("one"), parameters: params)
        let b = try PasswordKey.derive(passphrase: try Self.passphrase("two"), parameters: params)
        let a2 = try PasswordKey.derive(passphrase: try Self.passphrase("one"), parameters: params)
        let same1 = a.constantTimeEquals(b)
        #expect(!same1)
        let same2 = a.constantTimeEquals(a2)
        #expect(same2)
    }

    @Test func rejectsUnknownAlgorithmAndBadLimits() throws {
        var params = try PasswordKDFParameters.generate(strength: .minimumForTests)
        params.algorithm = "scrypt"
        #expect(throws: CryptoError.self) { try PasswordKey.derive(passphrase: try Self.passphrase("x"), parameters: params) }
        params = try PasswordKDFParameters.generate(strength: .minimumForTests)
        params.opsLimit = 0
        #expect(throws: CryptoError.passwordHashingFailed) {
            try PasswordKey.derive(passphrase: try Self.passphrase("x"), parameters: params)
        }
        params = try PasswordKDFParameters.generate(strength: .minimumForTests)
        params.salt = "00"
        #expect(throws: CryptoError.self) { try PasswordKey.derive(passphrase: try Self.passphrase("x"), parameters: params) }
    }
}
