import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The erasure ledger (docs/CRYPTO.md §Erasure ledger): an append-only file beside the keyring,
/// `KEYS_DIR/erasure-ledger`, holding a keyed reference of every erased subject and nothing
/// else, so that restoring a backup can erase again whoever was erased after it.
///
///     header:    "anonreg erasure ledger v2\n"
///     entry i:   hex(ref_i, 32 bytes) ‖ " " ‖ hex(mac_i, 16 bytes) ‖ "\n"      (98 bytes)
///     ref_i     = BLAKE2b-256(ledger key, "anonreg/v1/erasure-ledger-entry" ‖ 0x00 ‖ sid)
///     mac_i     = BLAKE2b-128(ledger key, "anonreg/v1/erasure-ledger-chain" ‖ 0x00 ‖ mac_{i-1} ‖ ref_i)
///     mac_0     = 16 zero bytes
///
/// The MACs chain, so an entry cannot be removed, reordered or moved to another ledger without
/// breaking every later MAC; cutting entries off the end is caught by comparing with the
/// `State` (entry count and chain head) that the database records in each erasure's
/// transaction. The erasure ledger key is `crypto_kdf` subkey 1 of the index key under "ANRGledg".
public struct ErasureLedger: Sendable {
    public static let fileName = "erasure-ledger"
    public static let header = "anonreg erasure ledger v2\n"
    public static let referenceBytes = 32
    public static let macBytes = 16
    /// Bytes per entry on disk.
    public static let entryBytes = 2 * referenceBytes + 1 + 2 * macBytes + 1

    /// How far a ledger goes: its number of entries and the MAC of its last entry (16 zero
    /// bytes for an empty ledger). The database keeps the state of its last erasure.
    public struct State: Sendable, Equatable {
        public var count: Int
        public var head: [UInt8]
        public init(count: Int, head: [UInt8]) {
            self.count = count
            self.head = head
        }
        public static let empty = State(count: 0, head: [UInt8](repeating: 0, count: ErasureLedger.macBytes))
    }

    /// A ledger read whole, every MAC checked.
    public struct Contents: Sendable {
        /// The references in ledger order.
        public var references: [[UInt8]]
        /// `macs[i]` is the chain head after entry i.
        public var macs: [[UInt8]]
        public init(references: [[UInt8]], macs: [[UInt8]]) {
            self.references = references
            self.macs = macs
        }
        public var state: State { State(count: references.count, head: macs.last ?? State.empty.head) }
    }

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

    /// mac_i from mac_{i-1} and ref_i.
    func mac(_ reference: [UInt8], previous: [UInt8]) throws(KeyringError) -> [UInt8] {
        do { return try KeyedHash.hash(label: Label.erasureLedgerChain, previous + reference, key: key.bytes, length: Self.macBytes) } catch
        {
            throw .crypto(error)
        }
    }

    /// The lines recorded for `references` after a ledger in `state`, and the state after them.
    func lines(_ references: [[UInt8]], after state: State) throws(KeyringError) -> (bytes: [UInt8], state: State) {
        var state = state
        var bytes: [UInt8] = []
        for reference in references {
            guard reference.count == Self.referenceBytes else {
                throw .crypto(.invalidLength(what: "erasure ledger reference", expected: Self.referenceBytes, actual: reference.count))
            }
            let mac = try mac(reference, previous: state.head)
            bytes += Array((Hex.encode(reference) + " " + Hex.encode(mac) + "\n").utf8)
            state = State(count: state.count + 1, head: mac)
        }
        return (bytes, state)
    }

    /// Appends `references` and fsyncs the file (and the directory when the file is new) before
    /// returning: an erasure is acknowledged only after this. Returns the ledger's state after
    /// the append, which the erasure's transaction records in the database.
    ///
    /// The file is opened and checked (regular, owner, mode 0600, header) even with no
    /// reference: the daemon calls `append([])` at start so a broken ledger shows then, not at
    /// the first withdrawal. A torn last line (a crash during an earlier append, whose erasure
    /// was therefore never acknowledged) is cut off first; a ledger torn anywhere else is refused.
    @discardableResult
    public func append(_ references: [[UInt8]]) throws(KeyringError) -> State {
        let fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notARegularFile(path: path) }
        try SecureFile.checkOwnerAndMode(path: path, st: st, isDirectory: false)
        // Appends happen one at a time (the store's single writer); the lock also keeps an offline
        // reader (`keys backup`, LOCK_SH) from seeing a half-written line.
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw .io(path: path, operation: "lock", errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        guard fstat(fd, &st) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
        let (state, created) = try prepareTail(fd: fd, size: Int(st.st_size))
        let (bytes, after) = try lines(references, after: state)
        if !bytes.isEmpty {
            try bytes.withUnsafeBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }.get()
        }
        if !bytes.isEmpty || created {
            guard fsync(fd) == 0 else { throw .io(path: path, operation: "fsync", errno: errno) }
        }
        if created { try SecureFile.syncDirectory(directory) }
        return after
    }

    /// Makes the file end on a complete entry and returns the state there. An empty file, or
    /// one holding only part of the header (a crash during the very first append: nothing was
    /// acknowledged), gets the header. After the last newline:
    /// - nothing: the file is whole;
    /// - a complete entry whose MAC verifies but whose newline is missing (a crash between the
    ///   write and its end, or a copy tool): the entry is kept and its newline written, because
    ///   its erasure may have been acknowledged;
    /// - fewer bytes than an entry, all of an entry's characters: a torn line from a crash during
    ///   an append that was never fsynced, so never acknowledged: it is cut;
    /// - anything else (an entry whose MAC fails, a foreign header, a newline off an entry
    ///   boundary): refused, and the file is left exactly as it was.
    func prepareTail(fd: Int32, size: Int) throws(KeyringError) -> (state: State, created: Bool) {
        let header = Array(Self.header.utf8)
        var start = [UInt8](repeating: 0, count: min(size, header.count))
        guard start.isEmpty || pread(fd, &start, start.count, 0) == start.count else {
            throw .io(path: path, operation: "read", errno: errno)
        }
        guard header.starts(with: start) else {
            throw .malformedLedger(path: path, reason: "it does not start with \"\(Self.header.dropLast())\"; the file was left untouched")
        }
        if size < header.count {
            guard ftruncate(fd, 0) == 0 else { throw .io(path: path, operation: "truncate", errno: errno) }
            try header.withUnsafeBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }.get()
            return (.empty, true)
        }
        // The real last newline, however far back (the header's own ends at header.count - 1).
        var keep = header.count
        var end = size
        var chunk = [UInt8](repeating: 0, count: 4096)
        scan: while end > header.count {
            let from = max(header.count, end - chunk.count)
            let n = end - from
            guard pread(fd, &chunk, n, off_t(from)) == n else { throw .io(path: path, operation: "read", errno: errno) }
            if let i = chunk.prefix(n).lastIndex(of: UInt8(ascii: "\n")) {
                keep = from + i + 1
                break scan
            }
            end = from
        }
        guard (keep - header.count) % Self.entryBytes == 0 else {
            throw .malformedLedger(
                path: path, reason: "its last complete line ends at byte \(keep), not on an entry boundary; the file was left untouched")
        }
        let count = (keep - header.count) / Self.entryBytes
        var state = State.empty
        if count > 0 {
            var last = [UInt8](repeating: 0, count: Self.entryBytes)
            guard pread(fd, &last, Self.entryBytes, off_t(keep - Self.entryBytes)) == Self.entryBytes else {
                throw .io(path: path, operation: "read", errno: errno)
            }
            guard let entry = Self.parse(last.dropLast()) else {
                throw .malformedLedger(path: path, reason: "its last line is not an entry; the file was left untouched")
            }
            // The last entry's MAC, from the one before it: an append never chains onto a line
            // that was altered (the whole chain is checked by `read`, at start and at restore).
            var previous = State.empty.head
            if count > 1 {
                var before = [UInt8](repeating: 0, count: Self.entryBytes)
                guard pread(fd, &before, Self.entryBytes, off_t(keep - 2 * Self.entryBytes)) == Self.entryBytes,
                    let prior = Self.parse(before.dropLast())
                else {
                    throw .malformedLedger(path: path, reason: "its second-to-last line is not an entry; the file was left untouched")
                }
                previous = prior.mac
            }
            guard Sodium.constantTimeEquals(try mac(entry.reference, previous: previous), entry.mac) else {
                throw .malformedLedger(path: path, reason: "its last line fails its chained MAC; the file was left untouched")
            }
            state = State(count: count, head: entry.mac)
        }
        guard keep < size else { return (state, false) }
        var tail = [UInt8](repeating: 0, count: size - keep)
        guard pread(fd, &tail, tail.count, off_t(keep)) == tail.count else { throw .io(path: path, operation: "read", errno: errno) }
        switch try classifyTail(tail[...], after: state) {
        case .entry(let mac):
            // Keep the entry: write its newline and make it durable before anything else.
            try [UInt8(ascii: "\n")].withUnsafeBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }.get()
            guard fsync(fd) == 0 else { throw .io(path: path, operation: "fsync", errno: errno) }
            return (State(count: count + 1, head: mac), false)
        case .torn:
            guard ftruncate(fd, off_t(keep)) == 0 else { throw .io(path: path, operation: "truncate", errno: errno) }
            guard fsync(fd) == 0 else { throw .io(path: path, operation: "fsync", errno: errno) }
            return (state, false)
        }
    }

    enum Tail {
        case entry(mac: [UInt8])
        case torn
    }

    /// What follows the last newline: a whole entry without its newline whose MAC continues the
    /// chain (kept), or the beginning of one (a torn, unacknowledged append: dropped). Anything
    /// else is refused.
    func classifyTail(_ tail: ArraySlice<UInt8>, after state: State) throws(KeyringError) -> Tail {
        if tail.count == Self.entryBytes - 1, let entry = Self.parse(tail) {
            let expected = try mac(entry.reference, previous: state.head)
            guard Sodium.constantTimeEquals(expected, entry.mac) else {
                throw .malformedLedger(path: path, reason: "its last line (no newline) fails its chained MAC; the file was left untouched")
            }
            return .entry(mac: entry.mac)
        }
        let hex = Set(Array("0123456789abcdef".utf8))
        let wellFormedPrefix =
            tail.count < Self.entryBytes - 1
            && tail.enumerated().allSatisfy { i, byte in
                i == 2 * Self.referenceBytes ? byte == UInt8(ascii: " ") : hex.contains(byte)
            }
        guard wellFormedPrefix else {
            throw .malformedLedger(
                path: path,
                reason: "it ends with \(tail.count) bytes after its last newline that are not an entry; the file was left untouched")
        }
        return .torn
    }

    static func parse(_ line: ArraySlice<UInt8>) -> (reference: [UInt8], mac: [UInt8])? {
        guard line.count == entryBytes - 1 else { return nil }
        let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 2, let reference = try? Hex.decode(String(decoding: parts[0], as: UTF8.self)),
            reference.count == referenceBytes,
            let mac = try? Hex.decode(String(decoding: parts[1], as: UTF8.self)), mac.count == macBytes
        else { return nil }
        return (reference, mac)
    }

    /// The whole ledger, every MAC of the chain checked; nil when there is no ledger file. A
    /// line whose MAC fails (edited, forged, removed, reordered, or written under another index
    /// key) is refused: a restore must not guess which subjects stay erased.
    public func read() throws(KeyringError) -> Contents? {
        guard SecureFile.exists(path) else { return nil }
        let bytes = try SecureFile.readAll(path, limit: 1 << 34)
        let header = Array(Self.header.utf8)
        // Part of a header only: a crash during the first append, before any entry.
        if bytes.count < header.count && header.starts(with: bytes) { return Contents(references: [], macs: []) }
        guard bytes.starts(with: header) else {
            throw .malformedLedger(path: path, reason: "it does not start with \"\(Self.header.dropLast())\"")
        }
        var lines = bytes[header.count...].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        // What follows the last newline: nothing, a whole entry whose newline was lost (kept:
        // its erasure may have been acknowledged), or a torn, never acknowledged append (dropped).
        let tail = lines.removeLast()
        var contents = Contents(references: [], macs: [])
        var previous = State.empty.head
        for (i, line) in lines.enumerated() {
            guard let entry = Self.parse(line) else {
                throw .malformedLedger(path: path, reason: "line \(i + 2) is not an entry")
            }
            let expected = try mac(entry.reference, previous: previous)
            guard Sodium.constantTimeEquals(entry.mac, expected) else {
                throw .malformedLedger(
                    path: path,
                    reason:
                        "line \(i + 2) fails its chained MAC: an entry was altered, removed or reordered, or written under another index key"
                )
            }
            contents.references.append(entry.reference)
            contents.macs.append(entry.mac)
            previous = entry.mac
        }
        if !tail.isEmpty, case .entry(let mac) = try classifyTail(tail, after: contents.state), let entry = Self.parse(tail) {
            contents.references.append(entry.reference)
            contents.macs.append(mac)
        }
        return contents
    }

    /// Appends every reference of `references` that the ledger lacks (a ledger carried by a
    /// database backup, merged at restore: docs/CRYPTO.md §Database backups). Erasures are only
    /// ever added. Returns the ledger's contents after the merge.
    @discardableResult
    public func merge(_ references: [[UInt8]]) throws(KeyringError) -> Contents {
        let current = try read() ?? Contents(references: [], macs: [])
        var have = Set(current.references)
        let missing = references.filter { have.insert($0).inserted }
        if !missing.isEmpty || !SecureFile.exists(path) { try append(missing) }
        return try read() ?? Contents(references: [], macs: [])
    }

    /// The bytes of a ledger holding `contents`: the header and one line per entry, exactly as
    /// `append` writes them.
    public func serialized(_ contents: Contents) throws(KeyringError) -> [UInt8] {
        Array(Self.header.utf8) + (try lines(contents.references, after: .empty).bytes)
    }

    /// Reads ledger bytes that are not in the keys directory (a database backup's ledger section),
    /// every MAC checked with this keyring's ledger key.
    public func parse(bytes: [UInt8]) throws(KeyringError) -> Contents {
        let header = Array(Self.header.utf8)
        guard bytes.starts(with: header), (bytes.count - header.count) % Self.entryBytes == 0 else {
            throw .malformedLedger(path: "the backup's ledger", reason: "it is not a whole erasure ledger")
        }
        var contents = Contents(references: [], macs: [])
        var previous = State.empty.head
        var at = header.count
        while at < bytes.count {
            guard bytes[at + Self.entryBytes - 1] == UInt8(ascii: "\n"), let entry = Self.parse(bytes[at..<(at + Self.entryBytes - 1)])
            else {
                throw .malformedLedger(path: "the backup's ledger", reason: "entry \(contents.references.count + 1) is not an entry")
            }
            guard Sodium.constantTimeEquals(try mac(entry.reference, previous: previous), entry.mac) else {
                throw .malformedLedger(
                    path: "the backup's ledger",
                    reason: "entry \(contents.references.count + 1) fails its chained MAC (altered, or written under another index key)")
            }
            contents.references.append(entry.reference)
            contents.macs.append(entry.mac)
            previous = entry.mac
            at += Self.entryBytes
        }
        return contents
    }

    /// Every reference in the ledger, each MAC checked. An absent ledger is empty here; callers
    /// that know how far the ledger must go use `verify(extends:)`.
    public func references() throws(KeyringError) -> Set<[UInt8]> {
        Set(try read()?.references ?? [])
    }

    /// The ledger read whole, refused unless it extends `recorded` (the state the database
    /// holds, or a backup's header names): at least as many entries, and entry `recorded.count`
    /// carrying the recorded chain head. A missing ledger extends only the empty state.
    @discardableResult
    public func verify(extends recorded: State) throws(KeyringError) -> Contents {
        guard let contents = try read() else {
            guard recorded.count == 0 else {
                throw .malformedLedger(path: path, reason: "it is missing, but the database records \(recorded.count) erasure(s) in it")
            }
            return Contents(references: [], macs: [])
        }
        try check(contents, extends: recorded)
        return contents
    }

    /// Throws unless `contents` (this ledger, read) extends `recorded`.
    public func check(_ contents: Contents, extends recorded: State) throws(KeyringError) {
        guard contents.references.count >= recorded.count else {
            throw .malformedLedger(
                path: path,
                reason: "it holds \(contents.references.count) entries but the database records \(recorded.count): entries were cut off")
        }
        if recorded.count > 0 {
            guard Sodium.constantTimeEquals(contents.macs[recorded.count - 1], recorded.head) else {
                throw .malformedLedger(
                    path: path, reason: "it does not extend the chain head recorded in the database: it was replaced or rewritten")
            }
        }
    }
}
