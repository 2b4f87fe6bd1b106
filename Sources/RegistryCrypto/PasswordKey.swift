internal import CSodium

/// Argon2id (`crypto_pwhash`, ALG_ARGON2ID13) parameters, stored beside what they seal.
public struct PasswordKDFParameters: Sendable, Equatable, Codable {
    /// Always "argon2id13" in this format version.
    public var algorithm: String
    /// Hex of `crypto_pwhash_SALTBYTES` random bytes.
    public var salt: String
    public var opsLimit: UInt64
    public var memLimit: UInt64

    public static let algorithmName = "argon2id13"
    public static var saltBytes: Int { Int(crypto_pwhash_saltbytes()) }

    /// Fresh parameters with a random salt. `strength` picks libsodium's presets.
    public static func generate(strength: PasswordStrength = .moderate) throws(CryptoError) -> PasswordKDFParameters {
        let (ops, mem) = strength.limits
        return PasswordKDFParameters(
            algorithm: algorithmName, salt: Hex.encode(try Sodium.randomBytes(count: saltBytes)),
            opsLimit: ops, memLimit: mem)
    }

    public init(algorithm: String, salt: String, opsLimit: UInt64, memLimit: UInt64) {
        self.algorithm = algorithm
        self.salt = salt
        self.opsLimit = opsLimit
        self.memLimit = memLimit
    }
}

/// libsodium's Argon2id presets.
public enum PasswordStrength: String, Sendable, CaseIterable {
    #if DEBUG
        /// Test suites only: `crypto_pwhash_OPSLIMIT_MIN` / `MEMLIMIT_MIN`. Compiled into debug
        /// builds only, and never accepted from a command line (`PasswordStrength(option:)`).
        case minimumForTests = "minimum"
    #endif
    case interactive
    /// The default for keyrings: 256 MiB, 3 passes.
    case moderate
    case sensitive

    /// The presets an admin may name on the command line (`--kdf-strength`).
    public static let options: [PasswordStrength] = [.interactive, .moderate, .sensitive]

    /// A `--kdf-strength` value: interactive, moderate or sensitive, nothing else.
    public init?(option: String) {
        guard let strength = Self.options.first(where: { $0.rawValue == option }) else { return nil }
        self = strength
    }

    var limits: (UInt64, UInt64) {
        switch self {
        #if DEBUG
            case .minimumForTests: (UInt64(crypto_pwhash_opslimit_min()), UInt64(crypto_pwhash_memlimit_min()))
        #endif
        case .interactive: (UInt64(crypto_pwhash_opslimit_interactive()), UInt64(crypto_pwhash_memlimit_interactive()))
        case .moderate: (UInt64(crypto_pwhash_opslimit_moderate()), UInt64(crypto_pwhash_memlimit_moderate()))
        case .sensitive: (UInt64(crypto_pwhash_opslimit_sensitive()), UInt64(crypto_pwhash_memlimit_sensitive()))
        }
    }
}

/// Derives a symmetric key from a passphrase with Argon2id (docs/CRYPTO.md §Keyring sealing).
public enum PasswordKey {
    /// Argon2id(passphrase, salt) → `length` bytes of secure memory.
    public static func derive(
        passphrase: borrowing SecretBytes, parameters: PasswordKDFParameters,
        length: Int = XChaCha20Poly1305.keyBytes
    ) throws(CryptoError) -> SecretBytes {
        guard parameters.algorithm == PasswordKDFParameters.algorithmName else {
            throw .unsupportedAlgorithm(parameters.algorithm)
        }
        let salt = try Hex.decode(parameters.salt, length: PasswordKDFParameters.saltBytes, what: "argon2id salt")
        guard parameters.opsLimit >= UInt64(crypto_pwhash_opslimit_min()),
            parameters.opsLimit <= UInt64(crypto_pwhash_opslimit_max()),
            parameters.memLimit >= UInt64(crypto_pwhash_memlimit_min()),
            parameters.memLimit <= UInt64(crypto_pwhash_memlimit_max())
        else { throw .passwordHashingFailed }
        return try passphrase.withUnsafeBytes { (pw) throws(CryptoError) in
            try SecretBytes(count: length) { (out) throws(CryptoError) in
                let rc = crypto_pwhash(
                    out.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(length),
                    pw.baseAddress!.assumingMemoryBound(to: CChar.self), UInt64(pw.count),
                    salt, parameters.opsLimit, Int(parameters.memLimit),
                    crypto_pwhash_ALG_ARGON2ID13)
                try Sodium.check(rc, "crypto_pwhash", failure: .passwordHashingFailed)
            }
        }
    }
}
