internal import CSodium

/// Ed25519 signatures (`crypto_sign_*`), for audit checkpoints (docs/CRYPTO.md §Audit).
public enum Ed25519 {
    public static var seedBytes: Int { Int(crypto_sign_seedbytes()) }
    public static var publicKeyBytes: Int { Int(crypto_sign_publickeybytes()) }
    public static var secretKeyBytes: Int { Int(crypto_sign_secretkeybytes()) }
    public static var signatureBytes: Int { Int(crypto_sign_bytes()) }

    /// Verifies a detached signature. Wrong lengths are simply invalid, never a crash.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureBytes, publicKey.count == publicKeyBytes else { return false }
        guard (try? Sodium.ensureInitialized()) != nil else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }
}

/// An Ed25519 signing key pair derived from a 32-byte seed; the expanded secret key stays in
/// secure memory.
public final class Ed25519SigningKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let secretKey: SecretBytes
    public let publicKey: [UInt8]

    /// `crypto_sign_seed_keypair`: deterministic from the seed, so the key file stores the seed.
    public init(seed: borrowing SecretBytes) throws(CryptoError) {
        guard seed.count == Ed25519.seedBytes else {
            throw .invalidLength(what: "ed25519 seed", expected: Ed25519.seedBytes, actual: seed.count)
        }
        var pk = [UInt8](repeating: 0, count: Ed25519.publicKeyBytes)
        self.secretKey = try seed.withUnsafeBytes { (s) throws(CryptoError) in
            try SecretBytes(count: Ed25519.secretKeyBytes) { (sk) throws(CryptoError) in
                let rc = crypto_sign_seed_keypair(
                    &pk, sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    s.baseAddress!.assumingMemoryBound(to: UInt8.self))
                try Sodium.check(rc, "crypto_sign_seed_keypair")
            }
        }
        self.publicKey = pk
    }

    /// A detached signature over `message`.
    public func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: Ed25519.signatureBytes)
        var length: UInt64 = 0
        let rc = secretKey.withUnsafeBytes { sk in
            crypto_sign_detached(
                &signature, &length, message, UInt64(message.count),
                sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        try Sodium.check(rc, "crypto_sign_detached")
        return signature
    }

    public var description: String { "Ed25519SigningKey(public: \(Hex.encode(publicKey)), secret redacted)" }
    public var debugDescription: String { description }
}
