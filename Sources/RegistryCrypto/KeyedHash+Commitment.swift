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
    public static func commit(label: String, _ message: [UInt8]) throws(CryptoError) -> Commitment {
        let salt = try SecretBytes.random(count: keyBytes)
        let value = try hash(label: label, message, key: salt)
        return Commitment(value: value, salt: salt.withUnsafeBytes { Array($0) })
    }

    /// Recomputes a commitment from its salt, to check it.
    public static func opening(label: String, _ message: [UInt8], salt: [UInt8]) throws(CryptoError) -> [UInt8] {
        let key = try SecretBytes(count: salt.count) { buffer in buffer.copyBytes(from: salt) }
        return try hash(label: label, message, key: key)
    }
}
