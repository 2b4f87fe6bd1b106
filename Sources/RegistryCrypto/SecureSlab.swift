internal import CSodium
import Synchronization

/// A fixed set of equal-sized slots in one `sodium_malloc` region, lent out for short-lived
/// secrets: the data key a request unwraps, used for one row and dropped (docs/CRYPTO.md
/// §Secret memory, "Data-key slots").
///
/// - One allocation for the whole slab: guard pages around the region, `mlock` where the limit
///   allows, never swapped to the Swift heap. Giving each data key its own `sodium_malloc`
///   cost about 11 system calls (`mmap`, `mlock`, `mprotect` ×5, `madvise` ×2, `munlock`,
///   `munmap`) and a TLB shootdown per key: more than the scalar multiplication of an OPRF
///   evaluation (docs/PERFORMANCE.md, finding 1).
/// - A slot is owned by exactly one `SecretBytes` at a time, which zeroes it with
///   `sodium_memzero` before giving it back. `sodium_free` zeroes the whole region at the end.
/// - Slots stay writable: the region is shared, so one slot cannot be made read-only on its
///   own. Long-lived keys keep their own read-only `SecretBytes`.
/// - When every slot is lent out, `SecretBytes(count:from:fill:)` falls back to its own
///   `sodium_malloc`, so exhaustion costs speed, never correctness.
public final class SecureSlab: @unchecked Sendable {
    // @unchecked Sendable: `base` is fixed for the slab's life; which slot belongs to whom is
    // guarded by `free`, and a slot's bytes are touched only by its one current owner.
    private let base: UnsafeMutableRawPointer
    /// The largest secret a slot holds.
    public let slotBytes: Int
    /// How many slots the slab has.
    public let slotCount: Int
    /// Slot spacing: `slotBytes` rounded up to a 64-byte cache line, so that two threads never
    /// share a line.
    private let stride: Int
    private let free: Mutex<[Int]>

    /// Allocates `slotCount` slots of `slotBytes` each in one secure region.
    public init(slotBytes: Int, slotCount: Int) throws(CryptoError) {
        guard slotBytes > 0 else { throw .invalidLength(what: "slab slot", expected: 1, actual: slotBytes) }
        guard slotCount > 0 else { throw .invalidLength(what: "slab slot count", expected: 1, actual: slotCount) }
        try Sodium.ensureInitialized()
        let stride = (slotBytes + 63) / 64 * 64
        let (total, overflow) = stride.multipliedReportingOverflow(by: slotCount)
        guard !overflow, let pointer = sodium_malloc(total) else { throw .secureAllocationFailed(bytes: total) }
        sodium_memzero(pointer, total)
        self.base = pointer
        self.slotBytes = slotBytes
        self.slotCount = slotCount
        self.stride = stride
        // Lent from the end, so the lowest slots are reused first and stay in cache.
        self.free = Mutex(Array((0..<slotCount).reversed()))
    }

    deinit {
        // Every `SecretBytes` lent a slot holds a reference to the slab, so none is left when
        // this runs. sodium_free zeroes the region before releasing it.
        sodium_free(base)
    }

    /// Slots not lent out right now (tests and diagnostics).
    public var available: Int { free.withLock { $0.count } }

    /// Takes a free slot, or nil when all are lent out.
    func take() -> Int? {
        free.withLock { $0.popLast() }
    }

    /// The start of `slot`'s bytes.
    func pointer(_ slot: Int) -> UnsafeMutableRawPointer {
        base + slot * stride
    }

    /// Zeroes `slot` and returns it to the free list.
    func give(_ slot: Int) {
        sodium_memzero(pointer(slot), stride)
        free.withLock { $0.append(slot) }
    }

    /// Whether every byte of `slot` is zero (tests: a returned slot keeps nothing).
    public func slotIsZero(_ slot: Int) -> Bool {
        sodium_is_zero(pointer(slot).assumingMemoryBound(to: UInt8.self), stride) == 1
    }
}
