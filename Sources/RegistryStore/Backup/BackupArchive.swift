import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring

#if canImport(Glibc)
    import Glibc
#endif

/// The database backup file (docs/CRYPTO.md §Database backups):
///
///     "ANRGBAK2" ‖ BE32(n) ‖ header (n bytes of JSON) ‖ signature (64) ‖ payload ‖ ledger
///     signature = Ed25519(audit signing key, "anonreg/v2/backup-header" ‖ 0x00 ‖ "ANRGBAK2" ‖ header)
///
/// The payload is a consistent SQLite copy of the registry, taken with SQLite's online backup API
/// while the daemon serves. It holds what the database holds: ciphertext, keyed hashes and clear
/// status columns, never a key. The ledger section is the erasure ledger as it was when the
/// backup was taken (keyed references only), so a restore never needs a particular keyring
/// backup to know whom to erase again. The header names the lengths and checksums of both, and
/// the daemon's audit key signs the header: a header or payload edited after the fact (say,
/// every `review_on` cleared and the checksum recomputed) fails the signature.
///
/// Format 1 ("ANRGBAK1", earlier releases) has no signature and no ledger section; restore
/// accepts it only with `--allow-unsigned`.
public enum BackupArchive {
    public static let magic = Array("ANRGBAK2".utf8)
    public static let magicV1 = Array("ANRGBAK1".utf8)
    public static let format = 2
    public static let checksumAlgorithm = "blake2b-256"
    /// The header is small; anything larger is not a backup.
    static let maxHeaderBytes = 1 << 20
    /// The largest ledger section read (100 million erasures).
    static let maxLedgerBytes: Int64 = 1 << 34

    public struct Header: Codable, Sendable, Equatable {
        /// 2 (1 in backups of earlier releases).
        public var format: Int
        /// ISO 8601 UTC.
        public var createdAt: String
        /// Subjects in the payload.
        public var subjects: Int
        /// The distinct KEK versions the payload's data keys are wrapped under: the keyring that
        /// restores it needs every one of them.
        public var kekVersions: [Int]
        public var payloadBytes: Int64
        /// `checksumAlgorithm`: BLAKE2b-256("anonreg/v1/backup-payload" ‖ 0x00 ‖ payload), hex.
        public var payloadChecksum: String
        public var checksumAlgorithm: String
        /// The payload's SQLite `application_id` (anonreg's is 0x414E5247, "ANRG").
        public var applicationID: Int32
        /// The schema migrations applied in the payload.
        public var migrations: [String]
        /// The erasure-ledger state the payload's database recorded at its last erasure
        /// (docs/CRYPTO.md §Erasure ledger): the ledger a restore applies must extend it.
        /// Absent in backups from before the chained ledger.
        public var erasureLedger: LedgerHead?
        /// Format 2: the ledger section's length and BLAKE2b-256("anonreg/v2/backup-ledger" ‖
        /// 0x00 ‖ ledger), hex.
        public var ledgerBytes: Int64?
        public var ledgerChecksum: String?
        /// Format 2: the last audit entry of the payload (number and chain hash, hex).
        public var auditLog: AuditHead?
        /// Format 2: the audit public key that signed the header (hex), for the admin's eyes; the
        /// signature is checked against the keyring's key, never against this.
        public var signedBy: String?
    }

    /// An erasure-ledger state in a backup header: entries and chain head (hex).
    public struct LedgerHead: Codable, Sendable, Equatable {
        public var entries: Int
        public var head: String
        public init(entries: Int, head: String) {
            self.entries = entries
            self.head = head
        }
    }

    /// The end of the payload's audit log.
    public struct AuditHead: Codable, Sendable, Equatable {
        public var seq: Int64
        public var hash: String
        public init(seq: Int64, hash: String) {
            self.seq = seq
            self.hash = hash
        }
    }

    /// A backup's header as read: the decoded fields, its exact JSON bytes, and (format 2) the
    /// signature over them.
    public struct Opened: Sendable {
        public var header: Header
        public var json: [UInt8]
        public var signature: [UInt8]?

        /// Whether the header is signed by `publicKey` (the keyring's audit key). Always false for
        /// format 1, which has no signature.
        public func signatureVerifies(publicKey: [UInt8]) -> Bool {
            guard let signature else { return false }
            return Ed25519.verify(signature: signature, message: BackupArchive.signedMessage(json), publicKey: publicKey)
        }
    }

    /// What `extractPayload` read: the header, and the ledger section (format 2).
    public struct Extracted: Sendable {
        public var opened: Opened
        public var ledger: [UInt8]?
        public var header: Header { opened.header }
    }

    /// The bytes the header signature covers.
    static func signedMessage(_ json: [UInt8]) -> [UInt8] { Label.bytes(Label.backupHeader) + [0] + magic + json }

    /// The bytes that precede the payload: magic, length, the header's JSON, its signature.
    static func encode(_ header: Header, signingKey: Ed25519SigningKey) throws(StorageError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let json = try? encoder.encode(header) else { throw .database(reason: "could not encode the backup header") }
        let signature: [UInt8]
        do { signature = try signingKey.sign(signedMessage(Array(json))) } catch {
            throw .database(reason: "could not sign the backup header")
        }
        let n = UInt32(json.count)
        return magic + withUnsafeBytes(of: n.bigEndian) { Array($0) } + Array(json) + signature
    }

    /// Reads and checks the header of the backup at `fd`; leaves the offset at the payload.
    public static func readHeader(fd: Int32, path: String) throws(StorageError) -> Opened {
        var prefix = [UInt8](repeating: 0, count: magic.count + 4)
        let found = readFully(fd, &prefix) ? Array(prefix.prefix(magic.count)) : []
        guard found == magic || found == magicV1 else {
            throw .unusableDatabase(path: path, reason: "it is not an anonreg database backup (no ANRGBAK2 or ANRGBAK1 magic)")
        }
        let n = prefix[magic.count...].reduce(0) { $0 << 8 | Int($1) }
        guard n > 0, n <= maxHeaderBytes else { throw .unusableDatabase(path: path, reason: "its header length is implausible") }
        var json = [UInt8](repeating: 0, count: n)
        guard readFully(fd, &json), let header = try? JSONDecoder().decode(Header.self, from: Data(json)) else {
            throw .unusableDatabase(path: path, reason: "its header is not valid backup JSON")
        }
        let expected = found == magic ? 2 : 1
        guard header.format == expected else {
            throw .unusableDatabase(path: path, reason: "its header says format \(header.format) behind a format-\(expected) magic")
        }
        guard header.checksumAlgorithm == checksumAlgorithm else {
            throw .unusableDatabase(path: path, reason: "unknown checksum algorithm \(header.checksumAlgorithm)")
        }
        var signature: [UInt8]? = nil
        if expected == 2 {
            var bytes = [UInt8](repeating: 0, count: Ed25519.signatureBytes)
            guard readFully(fd, &bytes) else { throw .unusableDatabase(path: path, reason: "it ends inside its header signature") }
            guard let ledgerBytes = header.ledgerBytes, (0...maxLedgerBytes).contains(ledgerBytes), header.ledgerChecksum != nil else {
                throw .unusableDatabase(path: path, reason: "its format-2 header does not describe a ledger section")
            }
            signature = bytes
        }
        return Opened(header: header, json: json, signature: signature)
    }

    /// Copies the payload of the backup at `path` to a new file `destination` (mode 0600),
    /// checking its length and checksum, and reads the ledger section (format 2), checking its
    /// length and checksum too. On any failure `destination` is removed.
    public static func extractPayload(from path: String, to destination: String) throws(StorageError) -> Extracted {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unusableDatabase(path: path, reason: "it cannot be opened: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        return try extractPayload(fd: fd, name: path, to: destination)
    }

    /// The same from a descriptor opened by the caller (`path` names it in messages): standard
    /// input, or a file only root could open before the command switched to the state
    /// directory's owner. Reads sequentially, so a pipe works.
    public static func extractPayload(fd: Int32, name path: String, to destination: String) throws(StorageError) -> Extracted {
        let opened = try readHeader(fd: fd, path: path)
        let header = opened.header
        let out = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw .database(reason: "cannot create \(destination): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            close(out)
            if !ok { unlink(destination) }
        }
        fchmod(out, 0o600)
        let checksum: Checksum
        do { checksum = try Checksum(label: Label.backupPayload) } catch { throw .database(reason: "BLAKE2b unavailable") }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total: Int64 = 0
        while total < header.payloadBytes {
            let want = Int(min(Int64(buffer.count), header.payloadBytes - total))
            let n = read(fd, &buffer, want)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unusableDatabase(path: path, reason: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += Int64(n)
            do { try checksum.update(buffer, count: n) } catch {
                throw .database(reason: "BLAKE2b failed")
            }
            guard writeFully(out, buffer, count: n) else {
                throw .database(reason: "cannot write \(destination): \(String(cString: strerror(errno)))")
            }
        }
        guard total == header.payloadBytes else {
            throw .unusableDatabase(path: path, reason: "its payload is \(total) bytes, the header says \(header.payloadBytes) (truncated)")
        }
        let digest: [UInt8]
        do { digest = try checksum.finish() } catch { throw .database(reason: "BLAKE2b failed") }
        guard Hex.encode(digest) == header.payloadChecksum else {
            throw .unusableDatabase(path: path, reason: "its payload checksum does not match the header (the file was damaged or altered)")
        }
        var ledger: [UInt8]? = nil
        if opened.signature != nil, let ledgerBytes = header.ledgerBytes, let ledgerChecksum = header.ledgerChecksum {
            var bytes = [UInt8](repeating: 0, count: Int(ledgerBytes))
            guard bytes.isEmpty || readFully(fd, &bytes) else {
                throw .unusableDatabase(path: path, reason: "its ledger section is shorter than the header says (truncated)")
            }
            guard Hex.encode(try ledgerDigest(bytes)) == ledgerChecksum else {
                throw .unusableDatabase(path: path, reason: "its ledger section's checksum does not match the header (damaged or altered)")
            }
            ledger = bytes
        }
        var extra = [UInt8](repeating: 0, count: 1)
        guard read(fd, &extra, 1) == 0 else {
            throw .unusableDatabase(path: path, reason: "it has bytes after the sections its header describes (padded or altered)")
        }
        guard fsync(out) == 0 else { throw .database(reason: "cannot fsync \(destination)") }
        ok = true
        return Extracted(opened: opened, ledger: ledger)
    }

    /// BLAKE2b-256("anonreg/v2/backup-ledger" ‖ 0x00 ‖ ledger).
    static func ledgerDigest(_ bytes: [UInt8]) throws(StorageError) -> [UInt8] {
        do {
            let checksum = try Checksum(label: Label.backupLedger)
            try checksum.update(bytes, count: bytes.count)
            return try checksum.finish()
        } catch { throw .database(reason: "BLAKE2b failed") }
    }

    static func readFully(_ fd: Int32, _ bytes: inout [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    static func writeFully(_ fd: Int32, _ bytes: [UInt8], count: Int) -> Bool {
        var done = 0
        while done < count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, count - done) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }
}
