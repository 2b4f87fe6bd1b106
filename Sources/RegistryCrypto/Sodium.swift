internal import CSodium

/// The libsodium boundary: one-time initialisation and the return-code check that every call
/// into libsodium goes through.
public enum Sodium {
    private static let initResult: Int32 = sodium_init()

    /// Initialises libsodium exactly once (thread-safe: a lazily initialised global), and throws
    /// if it could not be initialised. `sodium_init` returns 0 on first success and 1 when it was
    /// already initialised; both are fine.
    public static func ensureInitialized() throws(CryptoError) {
        guard initResult >= 0 else { throw .libraryUnavailable }
    }

    /// The version string of the libsodium that is actually linked.
    public static var libraryVersion: String {
        String(cString: sodium_version_string())
    }

    /// Checks a libsodium return code: 0 is success, anything else throws `failure`.
    @inline(__always)
    static func check(_ code: Int32, _ function: String, failure: CryptoError? = nil) throws(CryptoError) {
        guard code == 0 else {
            throw failure ?? .libraryCallFailed(function: function, code: code)
        }
    }

    /// Public random bytes (nonces, salts). Secrets use `SecretBytes.random(count:)`.
    public static func randomBytes(count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try ensureInitialized()
        out.withUnsafeMutableBytes { buffer in
            if let base = buffer.baseAddress, buffer.count > 0 { randombytes_buf(base, buffer.count) }
        }
        return out
    }

    /// Constant-time comparison of two equally long byte strings (`sodium_memcmp`).
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in sodium_memcmp(pa.baseAddress!, pb.baseAddress!, a.count) == 0 }
        }
    }

    /// Overwrites a buffer with zeros in a way the compiler cannot elide (`sodium_memzero`).
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }

    /// Overwrites an array's storage with zeros.
    public static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { wipe($0) }
    }
}
