internal import CSodium

/// Unkeyed, labelled, streaming BLAKE2b-256 over public data too large to hold in memory (a
/// database backup's payload, docs/CRYPTO.md §Database backups):
/// `BLAKE2b-256(label ‖ 0x00 ‖ data)`.
public final class Checksum {
    private let state: UnsafeMutableRawPointer
    private let stateBytes = crypto_generichash_statebytes()
    private var finished = false

    public init(label: String) throws(CryptoError) {
        try Sodium.ensureInitialized()
        // crypto_generichash_state is 64-byte aligned and opaque to Swift: allocate it by size.
        state = UnsafeMutableRawPointer.allocate(byteCount: stateBytes, alignment: 64)
        try Sodium.check(crypto_generichash_init(OpaquePointer(state), nil, 0, KeyedHash.digestBytes), "crypto_generichash_init")
        try update(Label.bytes(label) + [0])
    }

    deinit { state.deallocate() }

    public func update(_ bytes: UnsafeRawBufferPointer) throws(CryptoError) {
        guard !finished else { throw .libraryCallFailed(function: "crypto_generichash_update", code: -1) }
        guard bytes.count > 0 else { return }
        let rc = crypto_generichash_update(
            OpaquePointer(state), bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        try Sodium.check(rc, "crypto_generichash_update")
    }

    public func update(_ bytes: [UInt8]) throws(CryptoError) {
        try update(bytes, count: bytes.count)
    }

    /// The first `count` bytes of `bytes` (a reused read buffer).
    public func update(_ bytes: [UInt8], count: Int) throws(CryptoError) {
        guard count <= bytes.count else { throw .invalidLength(what: "checksum input", expected: bytes.count, actual: count) }
        try bytes.withBytes { (buffer) throws(CryptoError) in try update(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) }
    }

    /// The 32-byte digest; the hasher cannot be used afterwards.
    public func finish() throws(CryptoError) -> [UInt8] {
        guard !finished else { throw .libraryCallFailed(function: "crypto_generichash_final", code: -1) }
        finished = true
        var out = [UInt8](repeating: 0, count: KeyedHash.digestBytes)
        try Sodium.check(crypto_generichash_final(OpaquePointer(state), &out, out.count), "crypto_generichash_final")
        return out
    }
}
