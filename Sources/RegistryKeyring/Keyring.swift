import Foundation
import RegistryCrypto

/// A loaded keyring: an immutable snapshot of the keys directory (docs/CRYPTO.md §Keyring).
///
/// Every key is in secure memory (`KeyMaterial` → `SecretBytes`). Changes (`rotatingKEK`,
/// `retiringKEK`, `destroyingKEK`) write the directory and return a new snapshot, so a server can
/// swap snapshots atomically while requests keep using the one they started with.
public final class Keyring: Sendable {
    public let source: KeyringSource
    public let manifest: KeyringManifest
    let keks: [Int: KeyMaterial]
    /// The RFC 9497 server key, derived from the stored seed and key info.
    public let oprfKey: OPRFServerKey
    /// Keys the patient-code index: subkey 1 of the index key under "ANRGcidx".
    public let codeIndexKey: KeyMaterial
    /// Keys the linkage hash: subkey 1 of the index key under "ANRGlink".
    public let linkageKey: KeyMaterial
    /// Keys audit subject references: subkey 1 of the index key under "ANRGaudt".
    public let auditSubjectKey: KeyMaterial
    /// MACs erasure-ledger entries: subkey 1 of the index key under "ANRGledg".
    public let erasureLedgerKey: KeyMaterial
    /// MACs the clear columns of subject and case rows: subkey 1 of the index key under
    /// "ANRGrmac" (docs/CRYPTO.md §Authenticated columns).
    public let rowMACKey: KeyMaterial
    /// Signs audit checkpoints.
    public let auditSigningKey: Ed25519SigningKey
    /// Present when the keyring is passphrase-sealed; seals key files written later.
    let sealingKey: KeyMaterial?

    init(
        source: KeyringSource, manifest: KeyringManifest, keks: [Int: KeyMaterial], oprfKey: OPRFServerKey,
        indexKey: borrowing SecretBytes, auditSigningKey: Ed25519SigningKey, sealingKey: KeyMaterial?
    ) throws(KeyringError) {
        self.source = source
        self.manifest = manifest
        self.keks = keks
        self.oprfKey = oprfKey
        self.auditSigningKey = auditSigningKey
        self.sealingKey = sealingKey
        do {
            codeIndexKey = KeyMaterial(
                try KDF.deriveSubkey(from: indexKey, id: 1, context: .codeIndex, length: KeyedHash.keyBytes), name: "code index key")
            linkageKey = KeyMaterial(
                try KDF.deriveSubkey(from: indexKey, id: 1, context: .linkageHash, length: KeyedHash.keyBytes), name: "linkage key")
            auditSubjectKey = KeyMaterial(
                try KDF.deriveSubkey(from: indexKey, id: 1, context: .auditSubject, length: KeyedHash.keyBytes), name: "audit subject key")
            erasureLedgerKey = KeyMaterial(
                try KDF.deriveSubkey(from: indexKey, id: 1, context: .erasureLedger, length: KeyedHash.keyBytes), name: "erasure ledger key"
            )
            rowMACKey = KeyMaterial(
                try KDF.deriveSubkey(from: indexKey, id: 1, context: .rowMAC, length: KeyedHash.keyBytes), name: "row MAC key")
        } catch { throw .crypto(error) }
    }

    /// A snapshot that shares the derived keys of `previous` (after a lifecycle change).
    init(
        source: KeyringSource, manifest: KeyringManifest, keks: [Int: KeyMaterial], previous: Keyring
    ) {
        self.source = source
        self.manifest = manifest
        self.keks = keks
        self.oprfKey = previous.oprfKey
        self.codeIndexKey = previous.codeIndexKey
        self.linkageKey = previous.linkageKey
        self.auditSubjectKey = previous.auditSubjectKey
        self.erasureLedgerKey = previous.erasureLedgerKey
        self.rowMACKey = previous.rowMACKey
        self.auditSigningKey = previous.auditSigningKey
        self.sealingKey = previous.sealingKey
    }

    /// The KEK that wraps new DEKs.
    public var primaryKEK: (version: Int, key: KeyMaterial) {
        let version = manifest.primaryVersion!  // validate() guarantees exactly one
        return (version, keks[version]!)
    }

    /// The KEK of `version`, if it is not destroyed.
    public func kek(version: Int) throws(KeyringError) -> KeyMaterial {
        guard let key = keks[version] else { throw .unknownKEKVersion(version) }
        return key
    }

    /// Every KEK version with its status, oldest first.
    public var kekEntries: [KeyringManifest.KEKEntry] { manifest.keks.sorted { $0.version < $1.version } }

    public var isSealed: Bool { manifest.sealing != nil }

    /// The OPRF seed (hex) and key info (text) for an offline backup. The hex string is the one
    /// place a seed leaves secure memory: the caller writes it only to a terminal or a 0600 file.
    public func exportOPRFSeed() throws(KeyringError) -> (hex: String, keyInfo: String) {
        let seed = try KeyFile.read(
            path: source.path(for: KeyFileName.oprfSeed), name: KeyFileName.oprfSeed,
            length: OPRF.seedBytes, sealingKey: sealingKey, rule: source.rule(for: KeyFileName.oprfSeed))
        try KeyCheck.verify(seed, name: KeyFileName.oprfSeed, manifest: manifest, path: source.directory)
        let info = (try? Hex.decode(manifest.oprf.keyInfo)) ?? []
        return (seed.withUnsafeBytes { Hex.encode($0) }, String(decoding: info, as: UTF8.self))
    }

    // MARK: - Loading

    /// Loads and checks a keyring. The keys directory must be 0700 and every file 0600 (or
    /// stricter) and owned by the current user, else loading is refused with the fix.
    ///
    /// `passphrase` unlocks a sealed keyring; without it, the systemd credential
    /// `anonreg-keyring-passphrase` is used when present.
    public static func load(from source: KeyringSource, passphrase: KeyMaterial? = nil) throws(KeyringError) -> Keyring {
        let manifestPath = source.path(for: KeyFileName.manifest)
        if source.credentialPath(for: KeyFileName.manifest) == nil {
            try SecureFile.checkDirectory(source.directory)
        }
        let manifest = try readManifest(path: manifestPath, rule: source.rule(for: KeyFileName.manifest))
        let secretNames =
            manifest.keks.filter { $0.status != .destroyed }.map(\.fileName)
            + [KeyFileName.oprfSeed, KeyFileName.index, KeyFileName.auditSigning]
        // Anything read from the keys directory needs the directory's own checks too, and the
        // directory must hold nothing but anonreg's regular files (a FIFO or a stray copy).
        if source.usesDirectory(for: [KeyFileName.manifest] + secretNames) {
            try SecureFile.checkDirectory(source.directory)
            try KeyringDirectory.check(source.directory)
        }

        var sealingKey: KeyMaterial? = nil
        if let sealing = manifest.sealing {
            let phrase: KeyMaterial
            if let passphrase {
                phrase = passphrase
            } else if let credential = source.passphraseCredentialPath {
                phrase = try Passphrase.read(path: credential, rule: .systemdCredential)
            } else {
                throw .passphraseRequired
            }
            let key = try Passphrase.sealingKey(passphrase: phrase, parameters: sealing.kdf)
            try Passphrase.verifyCheck(sealing.check, sealingKey: key)
            sealingKey = key
        } else if passphrase != nil {
            throw .passphraseNotUsed
        }

        /// Reads a key file and checks it against the manifest's key check.
        func readKey(_ name: String, length: Int) throws(KeyringError) -> SecretBytes {
            let key = try KeyFile.read(
                path: source.path(for: name), name: name, length: length, sealingKey: sealingKey, rule: source.rule(for: name))
            try KeyCheck.verify(key, name: name, manifest: manifest, path: manifestPath)
            return key
        }

        var keks: [Int: KeyMaterial] = [:]
        for entry in manifest.keks where entry.status != .destroyed {
            keks[entry.version] = KeyMaterial(
                try readKey(entry.fileName, length: XChaCha20Poly1305.keyBytes), name: "kek \(entry.version)")
        }
        let info: [UInt8]
        do { info = try Hex.decode(manifest.oprf.keyInfo) } catch {
            throw .malformedManifest(path: manifestPath, reason: "oprf.keyInfo is not hex")
        }
        let oprfKey: OPRFServerKey
        do {
            oprfKey = try OPRFServerKey(seed: try readKey(KeyFileName.oprfSeed, length: OPRF.seedBytes), info: info)
        } catch let error as KeyringError { throw error } catch let error as CryptoError { throw .crypto(error) } catch {
            throw .malformedManifest(path: manifestPath, reason: "unexpected error")
        }
        let auditKey: Ed25519SigningKey
        do {
            auditKey = try Ed25519SigningKey(seed: try readKey(KeyFileName.auditSigning, length: Ed25519.seedBytes))
        } catch let error as KeyringError { throw error } catch let error as CryptoError { throw .crypto(error) } catch {
            throw .malformedManifest(path: manifestPath, reason: "unexpected error")
        }
        guard Hex.encode(oprfKey.publicKey) == manifest.oprf.publicKey else {
            throw .malformedManifest(path: manifestPath, reason: "the OPRF seed does not match oprf.publicKey")
        }
        guard Hex.encode(auditKey.publicKey) == manifest.audit.publicKey else {
            throw .malformedManifest(path: manifestPath, reason: "the audit signing key does not match audit.publicKey")
        }
        let indexKey = try readKey(KeyFileName.index, length: KDF.masterKeyBytes)
        return try Keyring(
            source: source, manifest: manifest, keks: keks, oprfKey: oprfKey, indexKey: indexKey,
            auditSigningKey: auditKey, sealingKey: sealingKey)
    }

    static func readManifest(path: String, rule: SecureFile.Rule = .ownedPrivate) throws(KeyringError) -> KeyringManifest {
        let bytes = try SecureFile.readAll(path, rule: rule)
        let manifest: KeyringManifest
        do {
            manifest = try Self.decoder.decode(KeyringManifest.self, from: Data(bytes))
        } catch {
            throw .malformedManifest(path: path, reason: "it is not keyring JSON (\(Self.describe(error)))")
        }
        try manifest.validate(path: path)
        return manifest
    }

    static func writeManifest(_ manifest: KeyringManifest, directory: String, overwrite: Bool) throws(KeyringError) {
        let data: Data
        do { data = try encoder.encode(manifest) } catch {
            throw .malformedManifest(path: directory + "/" + KeyFileName.manifest, reason: "could not encode")
        }
        let bytes = Array(data) + [UInt8(ascii: "\n")]
        try SecureFile.writeAtomically(directory: directory, name: KeyFileName.manifest, overwrite: overwrite) {
            (fd, path) throws(KeyringError) in
            try bytes.withUnsafeBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }.get()
        }
    }

    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
            DecodingError.dataCorrupted(let context):
            "bad value at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        default: "malformed JSON"
        }
    }
}
