internal import CSodium

/// Subkey derivation with `crypto_kdf_derive_from_key` (BLAKE2b), named contexts only.
public enum KDF {
    public static var masterKeyBytes: Int { Int(crypto_kdf_keybytes()) }
    public static var contextBytes: Int { Int(crypto_kdf_contextbytes()) }
    public static var minSubkeyBytes: Int { Int(crypto_kdf_bytes_min()) }
    public static var maxSubkeyBytes: Int { Int(crypto_kdf_bytes_max()) }

    /// Derives subkey `id` of length `length` from `master` under `context`.
    public static func deriveSubkey(
        from master: borrowing SecretBytes,
        id: UInt64,
        context: KDFContext,
        length: Int
    ) throws(CryptoError) -> SecretBytes {
        guard master.count == masterKeyBytes else {
            throw .invalidLength(what: "kdf master key", expected: masterKeyBytes, actual: master.count)
        }
        guard length >= minSubkeyBytes, length <= maxSubkeyBytes else {
            throw .invalidLength(what: "kdf subkey", expected: length < minSubkeyBytes ? minSubkeyBytes : maxSubkeyBytes, actual: length)
        }
        return try master.withUnsafeBytes { (key) throws(CryptoError) in
            try SecretBytes(count: length) { (out) throws(CryptoError) in
                let rc = context.bytes.withUnsafeBytes { ctx in
                    crypto_kdf_derive_from_key(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), length, id,
                        ctx.baseAddress!.assumingMemoryBound(to: CChar.self),
                        key.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
                try Sodium.check(rc, "crypto_kdf_derive_from_key")
            }
        }
    }
}
