#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RegistryCrypto

/// The erasure ledger (docs/CRYPTO.md §Erasure ledger): an append-only file beside the keyring,
/// `KEYS_DIR/erasure-ledger`, holding a keyed reference of every erased subject and nothing
/// else, so that restoring a backup can erase again whoever was erased after it.
///
///     header:    "anonreg erasure ledger v1\n"
///     entry:     hex(reference, 32 bytes) ‖ " " ‖ hex(mac, 16 bytes) ‖ "\n"      (98 bytes)
///     reference = BLAKE2b-256(erasure ledger key, "anonreg/v1/erasure-ledger-entry" ‖ 0x00 ‖ sid)
///     mac       = BLAKE2b-128(erasure ledger key, "anonreg/v1/erasure-ledger" ‖ 0x00 ‖ reference)
///
/// The erasure ledger key is `crypto_kdf` subkey 1 of the index key under "ANRGledg".
public struct ErasureLedger: Sendable {
    public static let fileName = "erasure-ledger"
    public static let header = "anonreg erasure ledger v1\n"
    public static let referenceBytes = 32
    public static let macBytes = 16
    /// Bytes per entry on disk.
    public static let entryBytes = 2 * referenceBytes + 1 + 2 * macBytes + 1

    public let directory: String
    private let key: KeyMaterial

    public var path: String { directory + "/" + Self.fileName }

    /// The ledger of `keyring`'s keys directory, MACed with its erasure ledger key.
    public init(keyring: Keyring) {
        self.directory = keyring.source.directory
        self.key = keyring.erasureLedgerKey
    }

    public init(directory: String, keyring: Keyring) {
        self.directory = directory
        self.key = keyring.erasureLedgerKey
    }

    /// The ledger reference of the subject with this sid: a keyed hash of the sid that matches
    /// the subject's row in any backup and nothing else (not the audit log, not the code index).
    public func reference(sid: [UInt8]) throws(KeyringError) -> [UInt8] {
        do { return try KeyedHash.hash(label: Label.erasureLedgerEntry, sid, key: key.bytes, length: Self.referenceBytes) } catch {
            throw .crypto(error)
        }
    }

    func mac(_ reference: [UInt8]) throws(KeyringError) -> [UInt8] {
        do { return try KeyedHash.hash(label: Label.erasureLedger, reference, key: key.bytes, length: Self.macBytes) } catch {
            throw .crypto(error)
        }
    }

    /// The line recorded for `reference`.
    func line(_ reference: [UInt8]) throws(KeyringError) -> [UInt8] {
        guard reference.count == Self.referenceBytes else {
            throw .crypto(.invalidLength(what: "erasure ledger reference", expected: Self.referenceBytes, actual: reference.count))
        }
        return Array((Hex.encode(reference) + " " + Hex.encode(try mac(reference)) + "\n").utf8)
    }

    /// Appends `references` and fsyncs the file (and the directory when the file is new) before
    /// returning: an erasure is acknowledged only after this. A torn last line (a crash during an
    /// earlier append, whose erasure was therefore never acknowledged) is cut off first.
    public func append(_ references: [[UInt8]]) throws(KeyringError) {
        guard !references.isEmpty else { return }
        var bytes: [UInt8] = []
        for reference in references { bytes += try line(reference) }
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
        try SecureFile.checkOwnerAndMode(path: path, st: st, isDirectory: false)
        // Appends happen one at a time (the store's single writer); the lock also keeps an offline
        // reader from seeing a half-written line.
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw .io(path: path, operation: "lock", errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        guard fstat(fd, &st) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
        let created = st.st_size == 0
        if created {
            bytes = Array(Self.header.utf8) + bytes
        } else {
            try cutTornTail(fd: fd, size: Int(st.st_size))
        }
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
        }.get()
        guard fsync(fd) == 0 else { throw .io(path: path, operation: "fsync", errno: errno) }
        if created { try SecureFile.syncDirectory(directory) }
    }

    private func cutTornTail(fd: Int32, size: Int) throws(KeyringError) {
        var last: UInt8 = 0
        guard pread(fd, &last, 1, off_t(size - 1)) == 1 else { throw .io(path: path, operation: "read", errno: errno) }
        guard last != UInt8(ascii: "\n") else { return }
        // Find the end of the last complete line (at most one entry back).
        let window = min(size, Self.entryBytes + 1)
        var tail = [UInt8](repeating: 0, count: window)
        guard pread(fd, &tail, window, off_t(size - window)) == window else { throw .io(path: path, operation: "read", errno: errno) }
        let keep = tail.lastIndex(of: UInt8(ascii: "\n")).map { size - window + $0 + 1 } ?? 0
        guard ftruncate(fd, off_t(keep)) == 0 else { throw .io(path: path, operation: "truncate", errno: errno) }
    }

    /// Every reference in the ledger, each MAC checked. An absent ledger is empty. A line whose
    /// MAC fails (edited, forged, or written under another index key) is refused: a restore must
    /// not guess which subjects stay erased.
    public func references() throws(KeyringError) -> Set<[UInt8]> {
        guard SecureFile.exists(path) else { return [] }
        let bytes = try SecureFile.readAll(path, limit: 1 << 34)
        let headerBytes = Array(Self.header.utf8)
        guard bytes.starts(with: headerBytes) else {
            throw .malformedLedger(path: path, reason: "it does not start with \"\(Self.header.dropLast())\"")
        }
        var result = Set<[UInt8]>()
        var lines = bytes[headerBytes.count...].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        // What follows the last newline is a torn line whose erasure was never acknowledged (the
        // next append cuts it), or nothing.
        lines.removeLast()
        var lineNumber = 1
        for line in lines {
            lineNumber += 1
            let parts = line.split(separator: UInt8(ascii: " "))
            guard parts.count == 2, let reference = try? Hex.decode(String(decoding: parts[0], as: UTF8.self)),
                  reference.count == Self.referenceBytes,
                  let mac = try? Hex.decode(String(decoding: parts[1], as: UTF8.self)) else {
                throw .malformedLedger(path: path, reason: "line \(lineNumber) is not an entry")
            }
            guard Sodium.constantTimeEquals(mac, try self.mac(reference)) else {
                throw .malformedLedger(
                    path: path,
                    reason: "line \(lineNumber) fails its MAC: it was altered, or written under another index key")
            }
            result.insert(reference)
        }
        return result
    }

    /// Merges `other` (for example a ledger from a keyring backup) into this one: appends every
    /// reference this ledger lacks. Both are checked first.
    public func merge(_ others: Set<[UInt8]>) throws(KeyringError) -> Int {
        let mine = try references()
        let missing = others.subtracting(mine).sorted { $0.lexicographicallyPrecedes($1) }
        try append(missing)
        return missing.count
    }
}
