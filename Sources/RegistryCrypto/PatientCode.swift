/// The patient code: 128 random bits the patient carries (docs/CRYPTO.md §Patient code).
///
/// Text form: the 128-bit value as 26 Crockford Base32 symbols (big-endian, the top two bits of
/// the 130 are zero), followed by Crockford's mod-37 check symbol, written in groups of four:
/// `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXC` (27 symbols, 33 characters).
///
/// Parsing is tolerant as Crockford specifies: case-insensitive, `O`→`0`, `I`/`L`→`1`, and
/// spaces and hyphens are ignored. Because 37 is prime and larger than the alphabet, the check
/// symbol catches every single-symbol substitution and every adjacent transposition.
public struct PatientCode: ~Copyable, Sendable {
    /// The 16 secret bytes.
    public let bytes: SecretBytes

    public static let byteCount = 16
    static let dataSymbols = 26
    static let groupSize = 4
    static let alphabet: [UInt8] = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U".utf8)

    /// A fresh code from the OS CSPRNG.
    public static func generate() throws(CryptoError) -> PatientCode {
        PatientCode(bytes: try SecretBytes.random(count: byteCount))
    }

    public init(bytes: consuming SecretBytes) {
        precondition(bytes.count == PatientCode.byteCount, "a patient code is 16 bytes")
        self.bytes = bytes
    }

    /// The printable form, shown to the patient once. The caller must not log or store it.
    public func formatted() -> String {
        var symbols = [UInt8]()
        symbols.reserveCapacity(40)
        bytes.withUnsafeBytes { raw in
            // 130-bit big-endian value = 2 zero bits ‖ 128 bits; emit 5 bits at a time.
            var accumulator: UInt32 = 0
            var bits = 2  // the two leading zero bits
            var remainder: UInt32 = 0
            for byte in raw {
                accumulator = (accumulator << 8) | UInt32(byte)
                bits += 8
                while bits >= 5 {
                    let value = (accumulator >> UInt32(bits - 5)) & 0x1f
                    symbols.append(PatientCode.alphabet[Int(value)])
                    remainder = (remainder * 32 + value) % 37
                    bits -= 5
                }
                accumulator &= (1 << UInt32(bits)) - 1
            }
            symbols.append(PatientCode.alphabet[Int(remainder)])
        }
        var grouped = [UInt8]()
        for (i, symbol) in symbols.enumerated() {
            if i > 0, i % PatientCode.groupSize == 0 { grouped.append(UInt8(ascii: "-")) }
            grouped.append(symbol)
        }
        Sodium.wipe(&symbols)
        defer { Sodium.wipe(&grouped) }
        return String(decoding: grouped, as: UTF8.self)
    }

    /// Parses a code typed by a person. Errors never repeat the input.
    public static func parse(_ text: String) throws(CryptoError) -> PatientCode {
        var values = [UInt8]()
        values.reserveCapacity(27)
        defer { Sodium.wipe(&values) }
        var checkValue: UInt8? = nil
        var count = 0
        for c in text.utf8 {
            if c == UInt8(ascii: "-") || c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") { continue }
            count += 1
            guard count <= dataSymbols + 1 else { throw .invalidPatientCode(.wrongLength) }
            if count == dataSymbols + 1 {
                guard let v = symbolValue(c, allowCheckSymbols: true) else {
                    throw .invalidPatientCode(.invalidCharacter)
                }
                checkValue = v
            } else {
                guard let v = symbolValue(c, allowCheckSymbols: false) else {
                    throw .invalidPatientCode(.invalidCharacter)
                }
                values.append(v)
            }
        }
        guard values.count == dataSymbols, let check = checkValue else { throw .invalidPatientCode(.wrongLength) }
        // The first symbol carries the two always-zero top bits of the 130-bit value.
        guard values[0] < 8 else { throw .invalidPatientCode(.outOfRange) }
        var remainder: UInt32 = 0
        for v in values { remainder = (remainder * 32 + UInt32(v)) % 37 }
        guard remainder == UInt32(check) else { throw .invalidPatientCode(.checkSymbolMismatch) }
        let secret = try SecretBytes(count: byteCount) { (out) throws(CryptoError) in
            var accumulator: UInt32 = 0
            var bits = 0
            var index = 0
            for (i, v) in values.enumerated() {
                // Skip the two leading zero bits of the first symbol.
                let width = i == 0 ? 3 : 5
                accumulator = (accumulator << UInt32(width)) | UInt32(v & 0x1f)
                bits += width
                if bits >= 8 {
                    out[index] = UInt8(truncatingIfNeeded: accumulator >> UInt32(bits - 8))
                    index += 1
                    bits -= 8
                    accumulator &= (1 << UInt32(bits)) - 1
                }
            }
            accumulator = 0
        }
        return PatientCode(bytes: secret)
    }

    /// Crockford decoding: case-insensitive, O→0, I/L→1; U and the four punctuation symbols
    /// only in the check position.
    static func symbolValue(_ c: UInt8, allowCheckSymbols: Bool) -> UInt8? {
        var upper = c
        if upper >= UInt8(ascii: "a"), upper <= UInt8(ascii: "z") { upper -= 32 }
        switch upper {
        case UInt8(ascii: "O"): return 0
        case UInt8(ascii: "I"), UInt8(ascii: "L"): return 1
        default: break
        }
        guard let index = alphabet.firstIndex(of: upper) else { return nil }
        if index >= 32 && !allowCheckSymbols { return nil }
        return UInt8(index)
    }
}
