internal import CSodium

/// XChaCha20-Poly1305-IETF (`crypto_aead_xchacha20poly1305_ietf_*`).
///
/// Sealed format: `nonce (24) ‖ ciphertext ‖ tag (16)`. The nonce is drawn by `seal` from the OS
/// CSPRNG; a 192-bit random nonce makes collisions negligible (docs/CRYPTO.md §AEAD).
public enum XChaCha20Poly1305 {
    public static var keyBytes: Int { Int(crypto_aead_xchacha20poly1305_ietf_keybytes()) }
    public static var nonceBytes: Int { Int(crypto_aead_xchacha20poly1305_ietf_npubbytes()) }
    public static var tagBytes: Int { Int(crypto_aead_xchacha20poly1305_ietf_abytes()) }
    /// Bytes a sealed blob adds to its plaintext.
    public static var overheadBytes: Int { nonceBytes + tagBytes }

    /// Seals `plaintext` under `key`, binding `associatedData`. Returns `nonce ‖ ciphertext ‖ tag`.
    public static func seal(
        _ plaintext: [UInt8], associatedData: [UInt8], key: borrowing SecretBytes
    ) throws(CryptoError) -> [UInt8] {
        let nonce = try Sodium.randomBytes(count: nonceBytes)
        return try nonce + sealDetachedNonce(plaintext, nonce: nonce, associatedData: associatedData, key: key)
    }

    /// Seals secret bytes (a DEK being wrapped) without copying them out of secure memory.
    public static func seal(
        secret: borrowing SecretBytes, associatedData: [UInt8], key: borrowing SecretBytes
    ) throws(CryptoError) -> [UInt8] {
        let nonce = try Sodium.randomBytes(count: nonceBytes)
        let body = try secret.withUnsafeBytes { (message) throws(CryptoError) in
            try encrypt(message, nonce: nonce, associatedData: associatedData, key: key)
        }
        return nonce + body
    }

    /// Opens `nonce ‖ ciphertext ‖ tag`. Any change to key, associated data, nonce, ciphertext or
    /// tag, and any truncation, throws `.authenticationFailed`.
    public static func open(
        _ sealed: [UInt8], associatedData: [UInt8], key: borrowing SecretBytes
    ) throws(CryptoError) -> [UInt8] {
        let (nonce, body) = try split(sealed)
        return try openDetachedNonce(body, nonce: nonce, associatedData: associatedData, key: key)
    }

    /// Opens a sealed secret (a wrapped DEK) straight into secure memory: a slot of `slab` when
    /// one is given and free, else an allocation of its own.
    public static func openSecret(
        _ sealed: [UInt8], associatedData: [UInt8], key: borrowing SecretBytes, slab: SecureSlab? = nil
    ) throws(CryptoError) -> SecretBytes {
        let (nonce, body) = try split(sealed)
        try checkKey(key)
        return try key.withUnsafeBytes { (k) throws(CryptoError) in
            let fill = { (out: UnsafeMutableRawBufferPointer) throws(CryptoError) in
                try decrypt(into: out, body, nonce: nonce, associatedData: associatedData, key: k)
            }
            if let slab { return try SecretBytes(count: body.count - tagBytes, from: slab, fill: fill) }
            return try SecretBytes(count: body.count - tagBytes, fill: fill)
        }
    }

    // MARK: - Explicit-nonce forms (known-answer tests only; production always draws the nonce)

    /// `ciphertext ‖ tag` for an explicit nonce. Internal: only the Wycheproof tests use it.
    static func sealDetachedNonce(
        _ plaintext: [UInt8], nonce: [UInt8], associatedData: [UInt8], key: borrowing SecretBytes
    ) throws(CryptoError) -> [UInt8] {
        try plaintext.withBytes { (message) throws(CryptoError) in
            try encrypt(message, nonce: nonce, associatedData: associatedData, key: key)
        }
    }

    /// Opens `ciphertext ‖ tag` under an explicit nonce.
    static func openDetachedNonce(
        _ body: [UInt8], nonce: [UInt8], associatedData: [UInt8], key: borrowing SecretBytes
    ) throws(CryptoError) -> [UInt8] {
        guard nonce.count == nonceBytes else {
            throw .invalidLength(what: "nonce", expected: nonceBytes, actual: nonce.count)
        }
        guard body.count >= tagBytes else { throw .authenticationFailed }
        try checkKey(key)
        var plaintext = [UInt8](repeating: 0, count: body.count - tagBytes)
        try key.withUnsafeBytes { (k) throws(CryptoError) in
            try plaintext.withMutableBytes { (out) throws(CryptoError) in
                try decrypt(into: out, body, nonce: nonce, associatedData: associatedData, key: k)
            }
        }
        return plaintext
    }

    // MARK: - libsodium calls

    private static func checkKey(_ key: borrowing SecretBytes) throws(CryptoError) {
        guard key.count == keyBytes else {
            throw .invalidLength(what: "aead key", expected: keyBytes, actual: key.count)
        }
    }

    private static func split(_ sealed: [UInt8]) throws(CryptoError) -> ([UInt8], [UInt8]) {
        guard sealed.count >= nonceBytes + tagBytes else { throw .authenticationFailed }
        return (Array(sealed[..<nonceBytes]), Array(sealed[nonceBytes...]))
    }

    private static func encrypt(
        _ message: UnsafeRawBufferPointer, nonce: [UInt8], associatedData: [UInt8], key: borrowing SecretBytes
    ) throws(CryptoError) -> [UInt8] {
        guard nonce.count == nonceBytes else {
            throw .invalidLength(what: "nonce", expected: nonceBytes, actual: nonce.count)
        }
        try checkKey(key)
        var out = [UInt8](repeating: 0, count: message.count + tagBytes)
        var written: UInt64 = 0
        let rc = key.withUnsafeBytes { k in
            out.withUnsafeMutableBufferPointer { o in
                nonce.withUnsafeBufferPointer { n in
                    associatedData.withUnsafeBufferPointer { ad in
                        crypto_aead_xchacha20poly1305_ietf_encrypt(
                            o.baseAddress!, &written,
                            message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
                            ad.baseAddress, UInt64(ad.count),
                            nil, n.baseAddress!,
                            k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
        }
        try Sodium.check(rc, "crypto_aead_xchacha20poly1305_ietf_encrypt")
        return out
    }

    private static func decrypt(
        into out: UnsafeMutableRawBufferPointer, _ body: [UInt8], nonce: [UInt8],
        associatedData: [UInt8], key: UnsafeRawBufferPointer
    ) throws(CryptoError) {
        var written: UInt64 = 0
        // libsodium needs a non-NULL output pointer even for an empty plaintext.
        var scratch: UInt8 = 0
        let rc = body.withUnsafeBufferPointer { c in
            nonce.withUnsafeBufferPointer { n in
                associatedData.withUnsafeBufferPointer { ad in
                    withUnsafeMutablePointer(to: &scratch) { scratchPointer in
                        crypto_aead_xchacha20poly1305_ietf_decrypt(
                            out.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? scratchPointer, &written,
                            nil,
                            c.baseAddress!, UInt64(c.count),
                            ad.baseAddress, UInt64(ad.count),
                            n.baseAddress!,
                            key.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    }
                }
            }
        }
        try Sodium.check(rc, "crypto_aead_xchacha20poly1305_ietf_decrypt", failure: .authenticationFailed)
    }
}
