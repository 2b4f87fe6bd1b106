import Foundation
import RegistryCrypto

/// The lifecycle of a key-encryption key (docs/CRYPTO.md §KEK lifecycle):
/// `staged` is written and copied to every node but wraps nothing yet (the next rotation makes
/// it primary); `primary` wraps new DEKs; `active` still unwraps; `retired` is kept but no row
/// may use it; `destroyed` has had its key file overwritten and removed.
public enum KEKStatus: String, Codable, Sendable, CaseIterable {
    case primary, active, retired, destroyed, staged
}

/// `keyring.json`: everything about the keyring that is not secret. Key bytes live in the
/// separate `*.key` files it names (format: docs/CRYPTO.md §Key files, keys/README.md).
public struct KeyringManifest: Codable, Sendable, Equatable {
    public static let currentFormat = "anonreg-keyring/v1"

    public struct KEKEntry: Codable, Sendable, Equatable {
        public var version: Int
        public var status: KEKStatus
        public var createdAt: Date
        public var retiredAt: Date?
        public var destroyedAt: Date?
        /// When a staged version became primary (absent for a version rotated in directly, whose
        /// `createdAt` is that moment): the primary's age counts from here.
        public var promotedAt: Date?

        /// Since when this version wraps new DEKs, or would once staged.
        public var primarySince: Date { promotedAt ?? createdAt }

        public var fileName: String { KeyFileName.kek(version) }
    }

    /// Present when key files are sealed with a passphrase.
    public struct Sealing: Codable, Sendable, Equatable {
        public var kdf: PasswordKDFParameters
        /// An empty plaintext sealed under the file-sealing key: tells a wrong passphrase apart
        /// from a tampered key file.
        public var check: String
    }

    public struct OPRFEntry: Codable, Sendable, Equatable {
        /// RFC 9497 DeriveKeyPair key info, hex.
        public var keyInfo: String
        /// pkS, hex, so clients and operators can check which key answers.
        public var publicKey: String
        /// Linkage epoch: increases when the OPRF key is rotated (docs/CRYPTO.md §Rotation).
        public var epoch: Int
    }

    public struct AuditEntry: Codable, Sendable, Equatable {
        /// Ed25519 public key, hex: verifying checkpoints needs only this.
        public var publicKey: String
    }

    public var format: String
    public var createdAt: Date
    public var sealing: Sealing?
    public var keks: [KEKEntry]
    public var oprf: OPRFEntry
    public var audit: AuditEntry
    /// Per secret file: hex of BLAKE2b-128(key, "anonreg/v1/key-check" ‖ 0x00 ‖ file name).
    /// Loading compares it, so a key file swapped for another key of the same size is caught.
    public var keyChecks: [String: String]

    /// The length of a key check, in bytes (hex doubles it).
    public static var keyCheckBytes: Int { KeyCheck.bytes }

    /// The key check of KEK `version`, if the manifest names that version and it is not destroyed.
    public func kekCheck(version: Int) -> String? { keyChecks[KeyFileName.kek(version)] }

    public var primaryVersion: Int? { keks.first { $0.status == .primary }?.version }

    /// The staged version, if any: written, wrapping nothing until a rotation promotes it.
    public var stagedVersion: Int? { keks.first { $0.status == .staged }?.version }

    /// Reads and validates `keyring.json` alone (no key file): enough to verify audit signatures.
    public static func read(directory: String) throws(KeyringError) -> KeyringManifest {
        try Keyring.readManifest(path: directory + "/" + KeyFileName.manifest)
    }

    /// Structural rules every manifest must satisfy; a violation is reported, never repaired.
    func validate(path: String) throws(KeyringError) {
        func bad(_ reason: String) -> KeyringError { .malformedManifest(path: path, reason: reason) }
        guard format == Self.currentFormat else { throw bad("format \"\(format)\" is not \(Self.currentFormat)") }
        guard keks.filter({ $0.status == .primary }).count == 1 else { throw bad("exactly one KEK must be primary") }
        guard Set(keks.map(\.version)).count == keks.count else { throw bad("KEK versions repeat") }
        let staged = keks.filter { $0.status == .staged }
        guard staged.count <= 1 else { throw bad("at most one KEK may be staged") }
        if let staged = staged.first {
            // The next version to become primary: a rotation promotes it, never an older one.
            guard keks.allSatisfy({ $0.version <= staged.version }) else { throw bad("a staged KEK must be the newest version") }
            guard staged.retiredAt == nil, staged.destroyedAt == nil, staged.promotedAt == nil else {
                throw bad("a staged KEK has no retire, destroy or promotion date")
            }
        }
        guard keks.allSatisfy({ $0.version >= 1 }) else { throw bad("KEK versions start at 1") }
        guard (try? Hex.decode(oprf.keyInfo)) != nil else { throw bad("oprf.keyInfo is not hex") }
        guard oprf.epoch >= 1 else { throw bad("oprf.epoch starts at 1") }
        for entry in keks where entry.status != .destroyed {
            guard keyChecks[entry.fileName] != nil else { throw bad("no key check for \(entry.fileName)") }
        }
    }
}

/// File names inside the keys directory.
public enum KeyFileName {
    public static let manifest = "keyring.json"
    public static let oprfSeed = "oprf-seed.key"
    public static let index = "index.key"
    public static let auditSigning = "audit-signing.key"
    public static func kek(_ version: Int) -> String { "kek-\(version).key" }
}
