import CSodium

/// expand_message_xmd with SHA-512, as specified in RFC 9380 §5.3.1, including the oversize-DST
/// rule of §5.3.3. libsodium 1.0.18 has no hash-to-curve helper, so this is built on
/// `crypto_hash_sha512_*`.
public enum ExpandMessageXMD {
    /// b_in_bytes for SHA-512.
    static var hashBytes: Int { Int(crypto_hash_sha512_bytes()) }
    /// s_in_bytes, the SHA-512 input block size (RFC 9380 §5.3.1: 128 for SHA-512). libsodium
    /// exposes no constant for the block size, so it is written down here once.
    static let blockBytes = 128

    public static func expand(message: [UInt8], dst: [UInt8], length: Int) throws(CryptoError) -> [UInt8] {
        // §5.3.3: a DST longer than 255 bytes is replaced by H("H2C-OVERSIZE-DST-" ‖ DST).
        let dst = dst.count > 255 ? try sha512(Array("H2C-OVERSIZE-DST-".utf8) + dst) : dst
        // §5.3.1 step 1-2: ell = ceil(len_in_bytes / b_in_bytes); ABORT if ell > 255,
        // len_in_bytes > 65535, or len(DST) > 255.
        let ell = (length + hashBytes - 1) / hashBytes
        guard ell <= 255, length <= 65535, length > 0 else {
            throw .inputTooLong(what: "expand_message_xmd len_in_bytes", limit: 65535)
        }
        // 3. DST_prime = DST ‖ I2OSP(len(DST), 1)
        let dstPrime = dst + [UInt8(dst.count)]
        // 4. Z_pad = I2OSP(0, s_in_bytes); 5. l_i_b_str = I2OSP(len_in_bytes, 2)
        let zPad = [UInt8](repeating: 0, count: blockBytes)
        let lengthBytes: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff)]
        // 6-7. msg_prime = Z_pad ‖ msg ‖ l_i_b_str ‖ I2OSP(0, 1) ‖ DST_prime; b_0 = H(msg_prime)
        let b0 = try sha512(zPad, message, lengthBytes, [0], dstPrime)
        // 8. b_1 = H(b_0 ‖ I2OSP(1, 1) ‖ DST_prime)
        var b = try sha512(b0, [1], dstPrime)
        var uniform = b
        // 9-10. b_i = H(strxor(b_0, b_(i - 1)) ‖ I2OSP(i, 1) ‖ DST_prime)
        if ell > 1 {
            for i in 2...ell {
                var mixed = [UInt8](repeating: 0, count: hashBytes)
                for j in 0..<hashBytes { mixed[j] = b0[j] ^ b[j] }
                b = try sha512(mixed, [UInt8(i)], dstPrime)
                uniform += b
            }
        }
        // 11-12. uniform_bytes = b_1 ‖ ... ‖ b_ell, truncated to len_in_bytes
        return Array(uniform.prefix(length))
    }

    /// SHA-512 over the concatenation of `parts`.
    static func sha512(_ parts: [UInt8]...) throws(CryptoError) -> [UInt8] {
        try Sodium.ensureInitialized()
        var state = crypto_hash_sha512_state()
        try Sodium.check(crypto_hash_sha512_init(&state), "crypto_hash_sha512_init")
        for part in parts {
            try Sodium.check(crypto_hash_sha512_update(&state, part, UInt64(part.count)), "crypto_hash_sha512_update")
        }
        var out = [UInt8](repeating: 0, count: hashBytes)
        try Sodium.check(crypto_hash_sha512_final(&state, &out), "crypto_hash_sha512_final")
        return out
    }
}
