internal import CSodium

/// The ristretto255 group of RFC 9496 as RFC 9497 §4.1 uses it, over libsodium's
/// `crypto_core_ristretto255_*` and `crypto_scalarmult_ristretto255*`.
///
/// Scalars that are secret (the server key, the client blind) live in `SecretBytes`; elements are
/// public and are plain `[UInt8]` in their 32-byte canonical encoding.
public enum Ristretto255 {
    public static var elementBytes: Int { Int(crypto_core_ristretto255_bytes()) }
    public static var scalarBytes: Int { Int(crypto_core_ristretto255_scalarbytes()) }
    /// Input length of the one-way map (RFC 9496 §4.3.4, "element derivation").
    public static var hashBytes: Int { Int(crypto_core_ristretto255_hashbytes()) }
    /// Input length of scalar reduction.
    public static var nonReducedScalarBytes: Int { Int(crypto_core_ristretto255_nonreducedscalarbytes()) }

    /// DeserializeElement (RFC 9497 §2.1, RFC 9496 §4.3.1): rejects non-canonical encodings,
    /// wrong lengths, and the identity element (RFC 9497 §3.3.1 requires this of inputs).
    public static func validateElement(_ element: [UInt8]) throws(CryptoError) {
        try Sodium.ensureInitialized()
        guard element.count == elementBytes else { throw .invalidElement }
        // RFC 9496 §4.3.1: a canonical encoding has the top bit of the last byte clear. libsodium
        // before 1.0.19 (Debian 12 ships 1.0.18) ignores that bit, so it would accept a second
        // encoding of every element, among them 0…0 80 for the identity (found by fuzz-crypto).
        guard element[elementBytes - 1] & 0x80 == 0 else { throw .invalidElement }
        if element.allSatisfy({ $0 == 0 }) { throw .identityElement }
        guard crypto_core_ristretto255_is_valid_point(element) == 1 else { throw .invalidElement }
    }

    /// HashToGroup (RFC 9497 §4.1): hash_to_ristretto255 (RFC 9380 Appendix B) with
    /// expand_message_xmd(SHA-512), DST = "HashToGroup-" ‖ contextString, 64 bytes, then the
    /// one-way map `crypto_core_ristretto255_from_hash`.
    static func hashToGroup(_ input: [UInt8], dst: [UInt8]) throws(CryptoError) -> [UInt8] {
        let uniform = try ExpandMessageXMD.expand(message: input, dst: dst, length: hashBytes)
        var element = [UInt8](repeating: 0, count: elementBytes)
        try Sodium.check(crypto_core_ristretto255_from_hash(&element, uniform), "crypto_core_ristretto255_from_hash")
        return element
    }

    /// HashToScalar (RFC 9497 §4.1): expand_message_xmd(SHA-512) to 64 bytes, read as a
    /// little-endian integer and reduced modulo the group order.
    /// `message` streams the (possibly secret) input into the hash; the 64 uniform bytes live only
    /// in secure memory and are wiped after reduction.
    static func hashToScalar(
        dst: [UInt8], message: (inout SHA512) throws(CryptoError) -> Void
    ) throws(CryptoError) -> SecretBytes {
        let uniform = try SecretBytes(count: nonReducedScalarBytes) { (out) throws(CryptoError) in
            try ExpandMessageXMD.expand(dst: dst, length: nonReducedScalarBytes, into: out, message: message)
        }
        return try uniform.withUnsafeBytes { (wide) throws(CryptoError) in
            try SecretBytes(count: scalarBytes) { out in
                crypto_core_ristretto255_scalar_reduce(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), wide.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// k·P for a validated element P. libsodium returns -1 when P does not decode or the result is
    /// the identity; P was validated first, so only the identity (k ≡ 0) remains.
    static func multiply(_ scalar: borrowing SecretBytes, _ element: [UInt8]) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: elementBytes)
        let rc = scalar.withUnsafeBytes { k in
            crypto_scalarmult_ristretto255(&out, k.baseAddress!.assumingMemoryBound(to: UInt8.self), element)
        }
        try Sodium.check(rc, "crypto_scalarmult_ristretto255", failure: .identityElement)
        return out
    }

    /// k·G (ScalarMultGen).
    static func multiplyBase(_ scalar: borrowing SecretBytes) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: elementBytes)
        let rc = scalar.withUnsafeBytes { k in
            crypto_scalarmult_ristretto255_base(&out, k.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        try Sodium.check(rc, "crypto_scalarmult_ristretto255_base", failure: .identityElement)
        return out
    }

    /// 1/k mod L; fails for zero.
    static func invert(_ scalar: borrowing SecretBytes) throws(CryptoError) -> SecretBytes {
        try scalar.withUnsafeBytes { (k) throws(CryptoError) in
            try SecretBytes(count: scalarBytes) { (out) throws(CryptoError) in
                let rc = crypto_core_ristretto255_scalar_invert(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                try Sodium.check(rc, "crypto_core_ristretto255_scalar_invert")
            }
        }
    }

    /// A uniformly random non-zero scalar (RFC 9497 §4.1 RandomScalar).
    static func randomScalar() throws(CryptoError) -> SecretBytes {
        try SecretBytes(count: scalarBytes) { out in
            crypto_core_ristretto255_scalar_random(out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Whether a scalar is zero (constant time).
    static func isZero(_ scalar: borrowing SecretBytes) -> Bool {
        scalar.withUnsafeBytes { k in sodium_is_zero(k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count) == 1 }
    }

    /// Parses a scalar from its 32-byte little-endian encoding, rejecting values ≥ the group order
    /// (DeserializeScalar, RFC 9497 §2.1). Used for the test-vector blinds.
    static func scalar(hex: String) throws(CryptoError) -> SecretBytes {
        let candidate = try SecretBytes(hex: hex)
        guard candidate.count == scalarBytes else {
            throw .invalidLength(what: "scalar", expected: scalarBytes, actual: candidate.count)
        }
        // Canonical iff reducing (scalar ‖ 0^32) gives the scalar back.
        let reduced = try candidate.withUnsafeBytes { (k) throws(CryptoError) in
            try SecretBytes(count: scalarBytes) { out in
                var wide = [UInt8](repeating: 0, count: nonReducedScalarBytes)
                wide.withUnsafeMutableBytes { $0.copyMemory(from: k) }
                crypto_core_ristretto255_scalar_reduce(out.baseAddress!.assumingMemoryBound(to: UInt8.self), wide)
                Sodium.wipe(&wide)
            }
        }
        guard reduced.constantTimeEquals(candidate) else { throw .invalidScalar }
        return candidate
    }
}
