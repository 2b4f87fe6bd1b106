/// Salted hiding commitments (docs/CRYPTO.md §Audit, subject commitments).
extension KeyedHash {
    /// A commitment and the salt that opens it.
    public struct Commitment: Sendable, Equatable {
        public let value: [UInt8]
        public let salt: [UInt8]
    }

    /// BLAKE2b-keyed(salt, label ‖ 0x00 ‖ message) under a fresh random salt of
    /// `crypto_generichash_KEYBYTES`. Without the salt the value reveals nothing about the
    /// message, and two commitments to the same message cannot be linked.
    ///
    /// The salt is not a key to protect: it is stored in the clear beside the entry until the
    /// subject is erased. So it stays in an ordinary array, not in secure memory (a
    /// `sodium_malloc` per audit entry cost more than the hash, docs/PERFORMANCE.md).
    public static func commit(label: String, _ message: [UInt8]) throws(CryptoError) -> Commitment {
        let salt = try Sodium.randomBytes(count: keyBytes)
        return Commitment(value: try saltedHash(label: label, message, salt: salt), salt: salt)
    }

    /// Recomputes a commitment from its salt, to check it.
    public static func opening(label: String, _ message: [UInt8], salt: [UInt8]) throws(CryptoError) -> [UInt8] {
        try saltedHash(label: label, message, salt: salt)
    }

    private static func saltedHash(label: String, _ message: [UInt8], salt: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard salt.count >= minKeyBytes, salt.count <= maxKeyBytes else {
            throw .invalidLength(what: "blake2b key", expected: keyBytes, actual: salt.count)
        }
        let framed = Label.bytes(label) + [0] + message
        return try framed.withBytes { (bytes) throws(CryptoError) in
            try salt.withBytes { (key) throws(CryptoError) in try raw(bytes, keyBytes: key, length: digestBytes) }
        }
    }
}
