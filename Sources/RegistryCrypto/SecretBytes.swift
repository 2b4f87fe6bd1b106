internal import CSodium

/// Secret key material that owns its memory.
///
/// - Backed by `sodium_malloc` (guard pages, `mlock` where the limit allows) and released with
///   `sodium_free`, which zeroes the buffer first.
/// - Made read-only (`sodium_mprotect_readonly`) once filled, so a stray write faults.
/// - Non-copyable: exactly one owner, so there is exactly one copy to wipe.
/// - Short-lived data keys may instead borrow a slot of a `SecureSlab` (one shared
///   `sodium_malloc` region): the slot is zeroed and returned when the value is dropped, and it
///   is not made read-only (see `SecureSlab`).
/// - Never becomes a `String`, `Data` or `[UInt8]`: its bytes are only lent out through
///   `withUnsafeBytes`. It has no `Codable` conformance, and `description` is redacted.
public struct SecretBytes: ~Copyable, @unchecked Sendable {
    // @unchecked Sendable: the buffer is immutable after construction (read-only pages) and has a
    // single owner; moving that owner across threads is safe.
    private let base: UnsafeMutableRawPointer
    /// The number of secret bytes (not secret itself).
    public let count: Int
    /// The slab and slot this value borrowed, or nil when it owns its own allocation.
    private let slab: SecureSlab?
    private let slot: Int

    /// Allocates `count` bytes of secure memory, lets `fill` write them, then seals the pages
    /// read-only. If `fill` throws, the memory is wiped and freed and the error is rethrown.
    public init(
        count: Int,
        fill: (UnsafeMutableRawBufferPointer) throws(CryptoError) -> Void
    ) throws(CryptoError) {
        guard count > 0 else { throw .invalidLength(what: "secret", expected: 1, actual: 0) }
        try Sodium.ensureInitialized()
        guard let pointer = sodium_malloc(count) else { throw .secureAllocationFailed(bytes: count) }
        sodium_memzero(pointer, count)
        do {
            try fill(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        } catch {
            sodium_free(pointer)
            throw error
        }
        guard sodium_mprotect_readonly(pointer) == 0 else {
            sodium_free(pointer)
            throw .libraryCallFailed(function: "sodium_mprotect_readonly", code: -1)
        }
        self.init(base: pointer, count: count, slab: nil, slot: -1)
    }

    private init(base: UnsafeMutableRawPointer, count: Int, slab: SecureSlab?, slot: Int) {
        self.base = base
        self.count = count
        self.slab = slab
        self.slot = slot
    }

    /// Like `init(count:fill:)`, but in a free slot of `slab` when `count` fits one: no
    /// allocation and no system call. Falls back to an allocation of its own when the slab is
    /// exhausted or `count` is larger than a slot. If `fill` throws, the slot is wiped and
    /// returned, and the error is rethrown.
    public init(
        count: Int, from slab: SecureSlab,
        fill: (UnsafeMutableRawBufferPointer) throws(CryptoError) -> Void
    ) throws(CryptoError) {
        guard count > 0, count <= slab.slotBytes, let slot = slab.take() else {
            try self.init(count: count, fill: fill)
            return
        }
        let pointer = slab.pointer(slot)
        do {
            try fill(UnsafeMutableRawBufferPointer(start: pointer, count: count))
        } catch {
            slab.give(slot)
            throw error
        }
        self.init(base: pointer, count: count, slab: slab, slot: slot)
    }

    /// Fresh random secret bytes in a slot of `slab` (or an allocation of their own, as above).
    public static func random(count: Int, from slab: SecureSlab) throws(CryptoError) -> SecretBytes {
        try SecretBytes(count: count, from: slab) { buffer in randombytes_buf(buffer.baseAddress!, buffer.count) }
    }

    /// Fresh random secret bytes from the OS CSPRNG.
    public static func random(count: Int) throws(CryptoError) -> SecretBytes {
        try SecretBytes(count: count) { buffer in randombytes_buf(buffer.baseAddress!, buffer.count) }
    }

    /// Copies bytes into secure memory. The caller remains responsible for wiping its source.
    public init(copying source: UnsafeRawBufferPointer) throws(CryptoError) {
        try self.init(count: source.count) { buffer in
            buffer.copyMemory(from: source)
        }
    }

    /// Parses hexadecimal text directly into secure memory, without an intermediate array.
    /// Accepts upper and lower case; rejects odd lengths and non-hex characters.
    public init(hex: some StringProtocol) throws(CryptoError) {
        let utf8 = hex.utf8
        guard utf8.count > 0, utf8.count % 2 == 0 else { throw .invalidHex }
        try self.init(count: utf8.count / 2) { (buffer) throws(CryptoError) in
            var index = 0
            var high: UInt8? = nil
            for character in utf8 {
                guard let nibble = Hex.nibble(character) else { throw .invalidHex }
                if let h = high {
                    buffer[index] = h << 4 | nibble
                    index += 1
                    high = nil
                } else {
                    high = nibble
                }
            }
        }
    }

    deinit {
        if let slab {
            // A borrowed slot: zeroed, then handed back for the next data key.
            slab.give(slot)
        } else {
            // sodium_free makes the pages writable, zeroes them, and releases them.
            sodium_free(base)
        }
    }

    /// Lends the secret bytes to `body`. The pointer must not escape the closure.
    public func withUnsafeBytes<R: ~Copyable, E: Error>(
        _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Constant-time equality (`sodium_memcmp`); different lengths are unequal.
    public func constantTimeEquals(_ other: borrowing SecretBytes) -> Bool {
        guard count == other.count else { return false }
        return other.withUnsafeBytes { theirs in sodium_memcmp(base, theirs.baseAddress!, count) == 0 }
    }

    /// A copy in a fresh secure buffer (explicit, since the type is non-copyable).
    public func duplicate() throws(CryptoError) -> SecretBytes {
        try withUnsafeBytes { (bytes) throws(CryptoError) in try SecretBytes(copying: bytes) }
    }

    /// Never shows the bytes.
    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
}
