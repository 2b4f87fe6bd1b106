import Foundation
import RegistryCrypto

/// How `Keyring.create` makes a new keyring.
public struct KeyringCreateOptions: Sendable {
    /// A 32-byte RFC 9497 seed to restore the OPRF key from a paper backup; random when nil.
    public var oprfSeed: KeyMaterial?
    /// RFC 9497 DeriveKeyPair key info.
    public var oprfKeyInfo: [UInt8]
    /// Seal every key file with Argon2id(passphrase) when given.
    public var passphrase: KeyMaterial?
    public var passwordStrength: PasswordStrength
    public var now: Date

    public static let defaultOPRFKeyInfo = Array("anonreg linkage epoch 1".utf8)

    public init(
        oprfSeed: KeyMaterial? = nil, oprfKeyInfo: [UInt8] = KeyringCreateOptions.defaultOPRFKeyInfo,
        passphrase: KeyMaterial? = nil, passwordStrength: PasswordStrength = .moderate, now: Date = Date()
    ) {
        self.oprfSeed = oprfSeed
        self.oprfKeyInfo = oprfKeyInfo
        self.passphrase = passphrase
        self.passwordStrength = passwordStrength
        self.now = now
    }
}

extension Keyring {
    /// Creates a keyring in `directory` (created with mode 0700 if absent; it must be empty):
    /// KEK version 1 (primary), the OPRF seed, the index key and the audit signing seed, each in
    /// its own 0600 file, then `keyring.json` last, so a crash leaves no half-made manifest.
    public static func create(in directory: String, options: KeyringCreateOptions = .init()) throws(KeyringError) -> Keyring {
        // A weak passphrase is refused before anything is written.
        if let passphrase = options.passphrase { try Passphrase.checkStrength(passphrase) }
        if SecureFile.exists(directory) {
            try SecureFile.checkDirectory(directory)
            guard SecureFile.isEmptyDirectory(directory) else { throw .alreadyExists(path: directory) }
        } else {
            try SecureFile.makeDirectory(directory)
        }
        guard options.oprfKeyInfo.count <= OPRF.maxInputBytes else {
            throw .crypto(.inputTooLong(what: "oprf key info", limit: OPRF.maxInputBytes))
        }

        var sealing: KeyringManifest.Sealing? = nil
        var sealingKey: KeyMaterial? = nil
        if let passphrase = options.passphrase {
            let parameters: PasswordKDFParameters
            do { parameters = try PasswordKDFParameters.generate(strength: options.passwordStrength) } catch { throw .crypto(error) }
            let key = try Passphrase.sealingKey(passphrase: passphrase, parameters: parameters)
            sealing = .init(kdf: parameters, check: try Passphrase.makeCheck(sealingKey: key))
            sealingKey = key
        }

        do {
            var checks: [String: String] = [:]
            let kek = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
            try KeyFile.write(kek, directory: directory, name: KeyFileName.kek(1), sealingKey: sealingKey, overwrite: false)
            checks[KeyFileName.kek(1)] = try KeyCheck.value(for: kek, name: KeyFileName.kek(1))

            let seed =
                try options.oprfSeed.map { (s) throws(CryptoError) in try s.bytes.duplicate() }
                ?? SecretBytes.random(count: OPRF.seedBytes)
            guard seed.count == OPRF.seedBytes else {
                throw KeyringError.crypto(.invalidLength(what: "oprf seed", expected: OPRF.seedBytes, actual: seed.count))
            }
            let oprfKey = try OPRFServerKey(seed: seed, info: options.oprfKeyInfo)
            try KeyFile.write(seed, directory: directory, name: KeyFileName.oprfSeed, sealingKey: sealingKey, overwrite: false)
            checks[KeyFileName.oprfSeed] = try KeyCheck.value(for: seed, name: KeyFileName.oprfSeed)

            let index = try SecretBytes.random(count: KDF.masterKeyBytes)
            try KeyFile.write(index, directory: directory, name: KeyFileName.index, sealingKey: sealingKey, overwrite: false)
            checks[KeyFileName.index] = try KeyCheck.value(for: index, name: KeyFileName.index)

            let auditSeed = try SecretBytes.random(count: Ed25519.seedBytes)
            let auditKey = try Ed25519SigningKey(seed: auditSeed)
            try KeyFile.write(auditSeed, directory: directory, name: KeyFileName.auditSigning, sealingKey: sealingKey, overwrite: false)
            checks[KeyFileName.auditSigning] = try KeyCheck.value(for: auditSeed, name: KeyFileName.auditSigning)

            let manifest = KeyringManifest(
                format: KeyringManifest.currentFormat, createdAt: options.now, sealing: sealing,
                keks: [.init(version: 1, status: .primary, createdAt: options.now)],
                oprf: .init(keyInfo: Hex.encode(options.oprfKeyInfo), publicKey: Hex.encode(oprfKey.publicKey), epoch: 1),
                audit: .init(publicKey: Hex.encode(auditKey.publicKey)),
                keyChecks: checks)
            try manifest.validate(path: directory + "/" + KeyFileName.manifest)
            try writeManifest(manifest, directory: directory, overwrite: false)
        } catch let error as KeyringError {
            throw error
        } catch let error as CryptoError {
            throw .crypto(error)
        } catch {
            throw .io(path: directory, operation: "create keyring in", errno: EIO)
        }
        return try load(from: KeyringSource(directory: directory), passphrase: options.passphrase)
    }
}
