internal import CSodium

/// expand_message_xmd with SHA-512, as specified in RFC 9380 §5.3.1, including the oversize-DST
/// rule of §5.3.3. libsodium 1.0.18 has no hash-to-curve helper, so this is built on
/// `crypto_hash_sha512_*`.
///
/// DeriveKeyPair feeds the secret OPRF seed through this function, so the secret form
/// (`expand(dst:length:into:message:)`) streams the message from secure memory into the hash,
/// writes the output straight into the caller's buffer, and wipes every intermediate (b_0, b_i,
/// the hash state) before returning.
public enum ExpandMessageXMD {
    /// b_in_bytes for SHA-512.
    static var hashBytes: Int { Int(crypto_hash_sha512_bytes()) }
    /// s_in_bytes, the SHA-512 input block size (RFC 9380 §5.3.1: 128 for SHA-512). libsodium
    /// exposes no constant for the block size, so it is written down here once.
    static let blockBytes = 128
    /// §5.3.1 step 2: ell ≤ 255, so at most 255 · b_in_bytes output bytes.
    static var maxLength: Int { 255 * hashBytes }

    /// Public inputs, public output.
    public static func expand(message: [UInt8], dst: [UInt8], length: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(length, 0))
        try out.withMutableBytes { (buffer) throws(CryptoError) in
            try expand(dst: dst, length: length, into: buffer) { (hasher) throws(CryptoError) in try hasher.update(message) }
        }
        return out
    }

    /// Streams `message` into SHA-512 through `hasher` and writes `length` uniform bytes into
    /// `out` (which must be exactly `length` bytes).
    static func expand(
        dst: [UInt8], length: Int, into out: UnsafeMutableRawBufferPointer,
        message: (inout SHA512) throws(CryptoError) -> Void
    ) throws(CryptoError) {
        guard length > 0, length <= maxLength, length <= 65535 else {
            throw .invalidLength(what: "expand_message_xmd len_in_bytes", expected: maxLength, actual: length)
        }
        guard out.count == length else {
            throw .invalidLength(what: "expand_message_xmd output", expected: length, actual: out.count)
        }
        // §5.3.3: a DST longer than 255 bytes is replaced by H("H2C-OVERSIZE-DST-" ‖ DST).
        let dst = dst.count > 255 ? try sha512(Array("H2C-OVERSIZE-DST-".utf8), dst) : dst
        // 1. ell = ceil(len_in_bytes / b_in_bytes)
        let ell = (length + hashBytes - 1) / hashBytes
        // 3. DST_prime = DST ‖ I2OSP(len(DST), 1)
        let dstPrime = dst + [UInt8(dst.count)]
        // 4. Z_pad = I2OSP(0, s_in_bytes); 5. l_i_b_str = I2OSP(len_in_bytes, 2)
        let zPad = [UInt8](repeating: 0, count: blockBytes)
        let lengthBytes: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff)]
        // 6-7. msg_prime = Z_pad ‖ msg ‖ l_i_b_str ‖ I2OSP(0, 1) ‖ DST_prime; b_0 = H(msg_prime)
        var hasher = try SHA512()
        try hasher.update(zPad)
        try message(&hasher)
        try hasher.update(lengthBytes)
        try hasher.update([0])
        try hasher.update(dstPrime)
        var b0 = try hasher.finish()
        var b = [UInt8](repeating: 0, count: hashBytes)
        var mixed = [UInt8](repeating: 0, count: hashBytes)
        defer {
            Sodium.wipe(&b0)
            Sodium.wipe(&b)
            Sodium.wipe(&mixed)
        }
        var written = 0
        for i in 1...ell {
            // 8. b_1 = H(b_0 ‖ I2OSP(1, 1) ‖ DST_prime)
            // 9. b_i = H(strxor(b_0, b_(i - 1)) ‖ I2OSP(i, 1) ‖ DST_prime)
            for j in 0..<hashBytes { mixed[j] = i == 1 ? b0[j] : b0[j] ^ b[j] }
            var step = try SHA512()
            try step.update(mixed)
            try step.update([UInt8(i)])
            try step.update(dstPrime)
            Sodium.wipe(&b)
            b = try step.finish()
            // 11-12. uniform_bytes = b_1 ‖ ... ‖ b_ell, truncated to len_in_bytes
            let take = min(hashBytes, length - written)
            b.withUnsafeBytes { out.baseAddress!.advanced(by: written).copyMemory(from: $0.baseAddress!, byteCount: take) }
            written += take
        }
    }

    /// SHA-512 over the concatenation of public `parts`.
    static func sha512(_ parts: [UInt8]...) throws(CryptoError) -> [UInt8] {
        var hasher = try SHA512()
        for part in parts { try hasher.update(part) }
        return try hasher.finish()
    }
}

/// Incremental SHA-512 (`crypto_hash_sha512_*`) whose state is wiped when finished.
struct SHA512 {
    private var state = crypto_hash_sha512_state()

    init() throws(CryptoError) {
        try Sodium.ensureInitialized()
        try Sodium.check(crypto_hash_sha512_init(&state), "crypto_hash_sha512_init")
    }

    mutating func update(_ bytes: [UInt8]) throws(CryptoError) {
        try Sodium.check(crypto_hash_sha512_update(&state, bytes, UInt64(bytes.count)), "crypto_hash_sha512_update")
    }

    /// Feeds bytes from secure memory without copying them.
    mutating func update(_ bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try Sodium.check(
            crypto_hash_sha512_update(&state, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count)),
            "crypto_hash_sha512_update")
    }

    /// The digest; the state is zeroed afterwards (it held every input byte's influence).
    mutating func finish() throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(crypto_hash_sha512_bytes()))
        let rc = crypto_hash_sha512_final(&state, &out)
        withUnsafeMutableBytes(of: &state) { Sodium.wipe($0) }
        try Sodium.check(rc, "crypto_hash_sha512_final")
        return out
    }
}
