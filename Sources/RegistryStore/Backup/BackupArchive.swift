import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RegistryCore
import RegistryCrypto
import RegistryKeyring

/// The database backup file (docs/CRYPTO.md §Database backups):
///
///     "ANRGBAK1" ‖ BE32(n) ‖ header (n bytes of JSON) ‖ payload
///
/// The payload is a consistent SQLite copy of the registry, taken with SQLite's online backup API
/// while the daemon serves. It holds what the database holds: ciphertext and clear status
/// columns, never a key. The header says what is needed to restore it.
public enum BackupArchive {
    public static let magic = Array("ANRGBAK1".utf8)
    public static let format = 1
    public static let checksumAlgorithm = "blake2b-256"
    /// The header is small; anything larger is not a backup.
    static let maxHeaderBytes = 1 << 20

    public struct Header: Codable, Sendable, Equatable {
        /// Always 1 in this format.
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

    /// The bytes that precede the payload.
    static func encode(_ header: Header) throws(StorageError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let json = try? encoder.encode(header) else { throw .database(reason: "could not encode the backup header") }
        let n = UInt32(json.count)
        return magic + withUnsafeBytes(of: n.bigEndian) { Array($0) } + Array(json)
    }

    /// Reads and checks the header of the backup at `fd`; leaves the offset at the payload.
    public static func readHeader(fd: Int32, path: String) throws(StorageError) -> Header {
        var prefix = [UInt8](repeating: 0, count: magic.count + 4)
        guard readFully(fd, &prefix), Array(prefix.prefix(magic.count)) == magic else {
            throw .unusableDatabase(path: path, reason: "it is not an anonreg database backup (no ANRGBAK1 magic)")
        }
        let n = prefix[magic.count...].reduce(0) { $0 << 8 | Int($1) }
        guard n > 0, n <= maxHeaderBytes else { throw .unusableDatabase(path: path, reason: "its header length is implausible") }
        var json = [UInt8](repeating: 0, count: n)
        guard readFully(fd, &json), let header = try? JSONDecoder().decode(Header.self, from: Data(json)) else {
            throw .unusableDatabase(path: path, reason: "its header is not valid backup JSON")
        }
        guard header.format == format else {
            throw .unusableDatabase(path: path, reason: "it is backup format \(header.format); this anonreg reads format \(format)")
        }
        guard header.checksumAlgorithm == checksumAlgorithm else {
            throw .unusableDatabase(path: path, reason: "unknown checksum algorithm \(header.checksumAlgorithm)")
        }
        return header
    }

    /// Copies the payload of the backup at `path` to a new file `destination` (mode 0600),
    /// checking its length and checksum. On any failure `destination` is removed.
    public static func extractPayload(from path: String, to destination: String) throws(StorageError) -> Header {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unusableDatabase(path: path, reason: "it cannot be opened: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        return try extractPayload(fd: fd, name: path, to: destination)
    }

    /// The same from a descriptor opened by the caller (`path` names it in messages): standard
    /// input, or a file only root could open before the command switched to the state
    /// directory's owner. Reads sequentially, so a pipe works.
    public static func extractPayload(fd: Int32, name path: String, to destination: String) throws(StorageError) -> Header {
        let header = try readHeader(fd: fd, path: path)
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
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw .unusableDatabase(path: path, reason: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += Int64(n)
            do { try checksum.update(buffer, count: n) } catch {
                throw .database(reason: "BLAKE2b failed")
            }
            guard writeFully(out, buffer, count: n) else { throw .database(reason: "cannot write \(destination): \(String(cString: strerror(errno)))") }
        }
        guard total == header.payloadBytes else {
            throw .unusableDatabase(path: path, reason: "its payload is \(total) bytes, the header says \(header.payloadBytes) (truncated or padded)")
        }
        let digest: [UInt8]
        do { digest = try checksum.finish() } catch { throw .database(reason: "BLAKE2b failed") }
        guard Hex.encode(digest) == header.payloadChecksum else {
            throw .unusableDatabase(path: path, reason: "its payload checksum does not match the header (the file was damaged or altered)")
        }
        guard fsync(out) == 0 else { throw .database(reason: "cannot fsync \(destination)") }
        ok = true
        return header
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
