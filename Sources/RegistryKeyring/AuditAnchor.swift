import Foundation
import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// The newest signed audit checkpoint, kept outside the database, beside the keyring and the
/// erasure ledger (docs/CRYPTO.md §Audit, "Anchor"): `KEYS_DIR/audit-anchor`, mode 0600, one
/// JSON object, replaced atomically (temporary file, fsync, rename, directory fsync) after the
/// transaction that signed the checkpoint committed.
///
/// A database whose log is shorter than the anchor, or disagrees with it, was cut or replaced by
/// an older copy: `anonreg audit verify` fails and the daemon refuses to start on it. Because a
/// checkpoint is signed at least every `interval` entries, no entry beyond `seq + interval` can
/// have been issued: `anonreg backup restore` continues numbering after that, so an older
/// backup never reuses sequence numbers that exported copies already hold. The anchor holds no
/// secret; its signature is checked with the audit public key.
public struct AuditAnchor: Codable, Sendable, Equatable {
    public static let fileName = "audit-anchor"
    public static let format = 1

    public var format: Int
    /// The checkpoint: entry number, chain hash (hex), time, previous checkpoint, interval.
    public var seq: Int64
    public var hash: String
    public var at: String
    public var previous: Int64
    public var interval: Int
    /// Ed25519 over the version-2 checkpoint message (hex).
    public var signature: String

    public init(seq: Int64, hash: [UInt8], at: String, previous: Int64, interval: Int, signature: [UInt8]) {
        self.format = Self.format
        self.seq = seq
        self.hash = Hex.encode(hash)
        self.at = at
        self.previous = previous
        self.interval = interval
        self.signature = Hex.encode(signature)
    }

    /// The highest entry number that can have been issued while this was the newest checkpoint.
    public var highestIssuable: Int64 { seq + Int64(interval) }

    /// The anchor in `directory`, or nil when there is none (a registry older than the anchor).
    public static func read(directory: String) throws(KeyringError) -> AuditAnchor? {
        let path = directory + "/" + fileName
        guard SecureFile.exists(path) else { return nil }
        let bytes = try SecureFile.readAll(path, limit: 1 << 16)
        guard let anchor = try? JSONDecoder().decode(AuditAnchor.self, from: Data(bytes)), anchor.format == format,
            anchor.seq >= 1, anchor.interval >= 1, anchor.previous >= 0, anchor.previous < anchor.seq
        else {
            throw .malformedManifest(path: path, reason: "not an audit anchor of format \(format)")
        }
        return anchor
    }

    /// Replaces the anchor in `directory` atomically, unless it already records a checkpoint at or
    /// after `seq` (a late writer never moves it back).
    public func write(directory: String) throws(KeyringError) {
        if let current = try Self.read(directory: directory), current.seq >= seq { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let json = try? encoder.encode(self) else {
            throw .malformedManifest(path: directory, reason: "cannot encode the audit anchor")
        }
        let bytes = Array(json) + [0x0A]
        try SecureFile.writeAtomically(directory: directory, name: Self.fileName, overwrite: true) { (fd, path) throws(KeyringError) in
            try bytes.withUnsafeBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }.get()
        }
    }
}
