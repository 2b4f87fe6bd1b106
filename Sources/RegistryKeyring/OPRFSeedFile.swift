import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The offline backup of the OPRF key (docs/CRYPTO.md §OPRF seed backup): what
/// `anonreg keys export-oprf-seed --output FILE` writes and `anonreg init --oprf-seed-file FILE`
/// reads back, so the seed never has to pass through a command line (argv is readable by every
/// local user in /proc/PID/cmdline):
///
///     # comment lines
///     oprf-seed = <64 hex digits>
///     oprf-key-info-hex = <the key info, hex>
///
/// A file holding nothing but the 64 hex digits of the seed is read too. The file must be the
/// caller's and mode 0600 (or stricter), like a key file; it is read into secure memory and the
/// seed is decoded there.
public enum OPRFSeedFile {
    public static let seedField = "oprf-seed"
    public static let keyInfoField = "oprf-key-info-hex"
    /// The most bytes such a file may hold.
    static let maxBytes = 4096

    /// The file's text for a seed (hex) and its key info.
    public static func render(seedHex: String, keyInfo: [UInt8]) -> String {
        """
        # anonreg OPRF seed (RFC 9497 DeriveKeyPair). Anyone holding it can compute linkage
        # values offline: keep it offline, like the keys themselves.
        # Restore with: anonreg init --state-dir DIR --oprf-seed-file THIS_FILE (mode 0600).
        \(seedField) = \(seedHex)
        \(keyInfoField) = \(Hex.encode(keyInfo))

        """
    }

    /// The seed (in secure memory) and the key info, if the file gives one.
    public static func read(path: String) throws(KeyringError) -> (seed: KeyMaterial, keyInfo: [UInt8]?) {
        let (fd, size) = try SecureFile.openForReading(path)
        defer { close(fd) }
        guard size > 0, size <= maxBytes else {
            throw .malformedKeyFile(path: path, reason: "an OPRF seed file holds 1 to \(maxBytes) bytes")
        }
        let raw: SecretBytes
        do {
            raw = try SecretBytes(count: size) { (buffer) throws(CryptoError) in
                if (try? SecureFile.readExactly(fd: fd, into: buffer, path: path)) == nil {
                    throw CryptoError.invalidLength(what: "OPRF seed file", expected: size, actual: 0)
                }
            }
        } catch { throw .io(path: path, operation: "read", errno: EIO) }
        return try raw.withUnsafeBytes { (bytes) throws(KeyringError) in try parse(bytes, path: path) }
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(KeyringError) -> (seed: KeyMaterial, keyInfo: [UInt8]?) {
        func bad(_ reason: String) -> KeyringError { .malformedKeyFile(path: path, reason: reason) }
        func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D }
        var seedRange: Range<Int>? = nil
        var keyInfo: [UInt8]? = nil
        var bareLines = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            var lo = start
            var hi = end
            while lo < hi && isBlank(bytes[lo]) { lo += 1 }
            while hi > lo && isBlank(bytes[hi - 1]) { hi -= 1 }
            start = end + 1
            guard lo < hi, bytes[lo] != UInt8(ascii: "#") else { continue }
            if let equals = (lo..<hi).first(where: { bytes[$0] == UInt8(ascii: "=") }) {
                var nameEnd = equals
                while nameEnd > lo && isBlank(bytes[nameEnd - 1]) { nameEnd -= 1 }
                var valueStart = equals + 1
                while valueStart < hi && isBlank(bytes[valueStart]) { valueStart += 1 }
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[lo..<nameEnd]), as: UTF8.self)
                switch name {
                case seedField:
                    guard seedRange == nil else { throw bad("\(seedField) is given twice") }
                    seedRange = valueStart..<hi
                case keyInfoField:
                    guard keyInfo == nil else { throw bad("\(keyInfoField) is given twice") }
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[valueStart..<hi]), as: UTF8.self)
                    guard let decoded = try? Hex.decode(text), decoded.count <= OPRF.maxInputBytes else {
                        throw bad("\(keyInfoField) must be hex of at most \(OPRF.maxInputBytes) bytes")
                    }
                    keyInfo = decoded
                default:
                    // Never echo the line: it could be a mistyped seed.
                    throw bad(
                        "it has a line that is neither \(seedField) nor \(keyInfoField) (the file `anonreg keys export-oprf-seed --output` writes)"
                    )
                }
            } else {
                // The older form: the 64 hex digits alone.
                bareLines += 1
                guard bareLines == 1, seedRange == nil else { throw bad("it holds more than one seed") }
                seedRange = lo..<hi
            }
        }
        guard let seedRange else { throw bad("it holds no \(seedField) line") }
        guard seedRange.count == 2 * OPRF.seedBytes else { throw bad("the seed must be \(2 * OPRF.seedBytes) hex digits") }
        let seed: SecretBytes
        do {
            seed = try SecretBytes(count: OPRF.seedBytes) { (out) throws(CryptoError) in
                for i in 0..<OPRF.seedBytes {
                    guard let high = Hex.nibble(bytes[seedRange.lowerBound + 2 * i]),
                        let low = Hex.nibble(bytes[seedRange.lowerBound + 2 * i + 1])
                    else { throw .invalidHex }
                    out[i] = high << 4 | low
                }
            }
        } catch { throw bad("the seed must be \(2 * OPRF.seedBytes) hex digits") }
        return (KeyMaterial(seed, name: "oprf seed"), keyInfo)
    }
}
