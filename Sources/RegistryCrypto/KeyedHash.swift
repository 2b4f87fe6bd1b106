internal import CSodium

/// Keyed BLAKE2b (`crypto_generichash`), used for the patient-code index, the linkage hash and
/// audit subject references (docs/CRYPTO.md §Pseudonyms). Every call names a label that is
/// hashed first, so the same key can never produce the same digest for two purposes.
public enum KeyedHash {
    public static var keyBytes: Int { Int(crypto_generichash_keybytes()) }
    public static var minKeyBytes: Int { Int(crypto_generichash_keybytes_min()) }
    public static var maxKeyBytes: Int { Int(crypto_generichash_keybytes_max()) }
    public static var digestBytes: Int { Int(crypto_generichash_bytes()) }
    public static var minDigestBytes: Int { Int(crypto_generichash_bytes_min()) }
    public static var maxDigestBytes: Int { Int(crypto_generichash_bytes_max()) }

    /// BLAKE2b-keyed(key, message) with no label: for known-answer tests of the primitive.
    public static func raw(
        _ message: UnsafeRawBufferPointer, key: borrowing SecretBytes, length: Int
    ) throws(CryptoError) -> [UInt8] {
        guard key.count >= minKeyBytes, key.count <= maxKeyBytes else {
            throw .invalidLength(what: "blake2b key", expected: keyBytes, actual: key.count)
        }
        guard length >= minDigestBytes, length <= maxDigestBytes else {
            throw .invalidLength(what: "blake2b digest", expected: digestBytes, actual: length)
        }
        return try key.withUnsafeBytes { (k) throws(CryptoError) in try raw(message, keyBytes: k, length: length) }
    }

    /// The libsodium call, for a key the caller has checked. Internal: public callers go through
    /// `SecretBytes`, except the commitment salt, which is stored in the clear anyway.
    static func raw(
        _ message: UnsafeRawBufferPointer, keyBytes key: UnsafeRawBufferPointer, length: Int
    ) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: length)
        let rc = out.withUnsafeMutableBufferPointer { o in
            crypto_generichash(
                o.baseAddress!, length,
                message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
                key.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count)
        }
        try Sodium.check(rc, "crypto_generichash")
        return out
    }

    /// BLAKE2b-keyed(key, label ‖ 0x00 ‖ message), `length` bytes.
    public static func hash(
        label: String, _ message: UnsafeRawBufferPointer, key: borrowing SecretBytes,
        length: Int = KeyedHash.digestBytes
    ) throws(CryptoError) -> [UInt8] {
        var framed = Label.bytes(label)
        framed.append(0)
        framed.append(contentsOf: message)
        defer { Sodium.wipe(&framed) }
        return try framed.withBytes { (bytes) throws(CryptoError) in
            try raw(bytes, key: key, length: length)
        }
    }

    /// Keyed hash of a public or non-key message given as bytes.
    public static func hash(
        label: String, _ message: [UInt8], key: borrowing SecretBytes, length: Int = KeyedHash.digestBytes
    ) throws(CryptoError) -> [UInt8] {
        try message.withBytes { (bytes) throws(CryptoError) in
            try hash(label: label, bytes, key: key, length: length)
        }
    }

    /// Keyed hash of a secret (a patient code) without copying it out of secure memory first.
    public static func hash(
        label: String, secret: borrowing SecretBytes, key: borrowing SecretBytes,
        length: Int = KeyedHash.digestBytes
    ) throws(CryptoError) -> [UInt8] {
        guard key.count >= minKeyBytes, key.count <= maxKeyBytes else {
            throw .invalidLength(what: "blake2b key", expected: keyBytes, actual: key.count)
        }
        guard length >= minDigestBytes, length <= maxDigestBytes else {
            throw .invalidLength(what: "blake2b digest", expected: digestBytes, actual: length)
        }
        // crypto_generichash_state is 64-byte aligned and opaque to Swift: allocate it by size.
        let stateBytes = crypto_generichash_statebytes()
        let stateMemory = UnsafeMutableRawPointer.allocate(byteCount: stateBytes, alignment: 64)
        defer {
            Sodium.wipe(UnsafeMutableRawBufferPointer(start: stateMemory, count: stateBytes))
            stateMemory.deallocate()
        }
        let state = OpaquePointer(stateMemory)
        var prefix = Label.bytes(label)
        prefix.append(0)
        var out = [UInt8](repeating: 0, count: length)
        var rc = key.withUnsafeBytes { k in
            crypto_generichash_init(state, k.baseAddress!.assumingMemoryBound(to: UInt8.self), key.count, length)
        }
        try Sodium.check(rc, "crypto_generichash_init")
        rc = crypto_generichash_update(state, prefix, UInt64(prefix.count))
        try Sodium.check(rc, "crypto_generichash_update")
        rc = secret.withUnsafeBytes { s in
            crypto_generichash_update(state, s.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(s.count))
        }
        try Sodium.check(rc, "crypto_generichash_update")
        rc = crypto_generichash_final(state, &out, length)
        try Sodium.check(rc, "crypto_generichash_final")
        return out
    }

    /// Unkeyed BLAKE2b of public data (hash chains, checksums).
    public static func unkeyed(_ message: [UInt8], length: Int = KeyedHash.digestBytes) throws(CryptoError) -> [UInt8] {
        guard length >= minDigestBytes, length <= maxDigestBytes else {
            throw .invalidLength(what: "blake2b digest", expected: digestBytes, actual: length)
        }
        var out = [UInt8](repeating: 0, count: length)
        let rc = crypto_generichash(&out, length, message, UInt64(message.count), nil, 0)
        try Sodium.check(rc, "crypto_generichash")
        return out
    }
}
