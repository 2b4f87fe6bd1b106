import Testing

@testable import RegistryCrypto

struct KeyedHashTests {
    static func katKey() throws -> SecretBytes {
        try SecretBytes(count: 64) { for i in 0..<64 { $0[i] = UInt8(i) } }
    }

    /// BLAKE2 reference blake2b-kat.txt, keyed entries 0, 1 and 255.
    @Test func blake2bReferenceKAT() throws {
        let key = try Self.katKey()
        let empty = try [UInt8]().withBytes { (b) throws(CryptoError) in try KeyedHash.raw(b, key: key, length: 64) }
        #expect(
            Hex.encode(empty)
                == "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568"
        )
        let one = try [UInt8(0)].withBytes { (b) throws(CryptoError) in try KeyedHash.raw(b, key: key, length: 64) }
        #expect(
            Hex.encode(one)
                == "961f6dd1e4dd30f63901690c512e78e4b45e4742ed197c3c5e45c549fd25f2e4187b0bc9fe30492b16b0d0bc4ef9b0f34c7003fac09a5ef1532e69430234cebd"
        )
        let long = try (0..<255).map { UInt8($0) }.withBytes { (b) throws(CryptoError) in try KeyedHash.raw(b, key: key, length: 64) }
        #expect(
            Hex.encode(long)
                == "142709d62e28fcccd0af97fad0f8465b971e82201dc51070faa0372aa43e92484be1c1e73ba10906d5d1853db6a4106e0a7bf9800d373d6dee2d46d62ef2a461"
        )
    }

    @Test func labelledHashIsTheRawHashOfLabelZeroMessage() throws {
        let key = try SecretBytes.random(count: KeyedHash.keyBytes)
        let message: [UInt8] = [1, 2, 3]
        let framed = Array(Label.codeIndex.utf8) + [0] + message
        let expected = try framed.withBytes { (b) throws(CryptoError) in try KeyedHash.raw(b, key: key, length: 32) }
        #expect(try KeyedHash.hash(label: Label.codeIndex, message, key: key) == expected)
        let secret = try SecretBytes(copying: UnsafeRawBufferPointer(start: message, count: 3))
        #expect(try KeyedHash.hash(label: Label.codeIndex, secret: secret, key: key) == expected)
    }

    /// Independently computed with CPython: blake2b(b"anonreg/v1/code-index\0" + bytes([1,2,3]),
    /// key=bytes(range(32)), digest_size=32).
    @Test func labelledHashKnownAnswer() throws {
        let key = try SecretBytes(count: 32) { for i in 0..<32 { $0[i] = UInt8(i) } }
        #expect(
            Hex.encode(try KeyedHash.hash(label: Label.codeIndex, [1, 2, 3], key: key))
                == "e67e60d7b83147d26cb57af34831d6b6af19deb9cf04a5b0d4178426a58be416")
    }

    @Test func labelsSeparateDomains() throws {
        let key = try SecretBytes.random(count: KeyedHash.keyBytes)
        let a = try KeyedHash.hash(label: Label.codeIndex, [1], key: key)
        let b = try KeyedHash.hash(label: Label.linkageHash, [1], key: key)
        #expect(a != b)
    }

    @Test func keyMatters() throws {
        let a = try KeyedHash.hash(label: Label.codeIndex, [1], key: try SecretBytes.random(count: 32))
        let b = try KeyedHash.hash(label: Label.codeIndex, [1], key: try SecretBytes.random(count: 32))
        #expect(a != b)
    }

    @Test func rejectsBadLengths() throws {
        #expect(throws: CryptoError.self) {
            try KeyedHash.hash(label: Label.codeIndex, [1], key: try SecretBytes.random(count: 8))
        }
        #expect(throws: CryptoError.self) {
            try KeyedHash.hash(label: Label.codeIndex, [1], key: try SecretBytes.random(count: 32), length: 8)
        }
    }
}

struct KDFTests {
    static func master() throws -> SecretBytes {
        try SecretBytes(count: 32) { for i in 0..<32 { $0[i] = UInt8(i) } }
    }

    /// Independently computed: BLAKE2b(key=master, msg="", salt=LE64(id)‖0⁸, person=ctx‖0⁸).
    @Test(arguments: [
        (UInt64(0), "ANRGcidx", 32, "9693c3cd6b2cc41df5faa29bdf98074c34ac76f4255942e435802aede0f1978e"),
        (
            UInt64(123456789), "ANRGlink", 64,
            "61c83831a761078ec589b5987ed511ee722ac5c024cff822606c677516ab22faa6f2ff234261c6208aff9c54e9a9e53949249044688eb5510d687f600af7ef9e"
        ),
        (UInt64.max, "ANRGaudt", 16, "5a9037857fd34a0bfb3b06c250086601"),
    ])
    func knownAnswers(id: UInt64, context: String, length: Int, expected: String) throws {
        let ctx: KDFContext =
            switch context {
            case "ANRGcidx": .codeIndex
            case "ANRGlink": .linkageHash
            default: .auditSubject
            }
        let sub = try KDF.deriveSubkey(from: try Self.master(), id: id, context: ctx, length: length)
        sub.withUnsafeBytes { #expect(Hex.encode($0) == expected) }
    }

    @Test func namedContextsAreDistinct() {
        let all = [KDFContext.codeIndex, .linkageHash, .auditSubject, .keyFileSealing].map(\.bytes)
        #expect(Set(all.map { Hex.encode($0) }).count == all.count)
    }

    @Test func wrongMasterLengthIsRefused() throws {
        #expect(throws: CryptoError.invalidLength(what: "kdf master key", expected: 32, actual: 16)) {
            try KDF.deriveSubkey(from: try SecretBytes.random(count: 16), id: 0, context: .codeIndex, length: 32)
        }
    }
}
