import RegistryProtocol

/// A clinic's opaque handle to a subject: `case_` followed by 32 lower-case hex digits (128
/// random bits). The clinic keeps it in its own record; it is useless to any other clinic, and the
/// registry stores only a keyed hash of it plus a copy sealed under the subject's data key.
public struct CaseHandle: Hashable, Sendable, CustomStringConvertible {
    public static let prefix = "case_"
    public static let randomBytes = 16
    public let text: String

    /// Validates the shape only; whether it names a case is the store's answer.
    public init?(_ text: String) {
        var text = text
        let valid = text.withUTF8 { bytes in
            bytes.count == CaseHandle.prefix.utf8.count + 2 * CaseHandle.randomBytes
                && bytes.starts(with: CaseHandle.prefix.utf8)
                && bytes.dropFirst(CaseHandle.prefix.utf8.count).allSatisfy { CaseHandle.hexValue($0) != nil }
        }
        guard valid else { return nil }
        self.text = text
    }

    /// The 16 random bytes behind the text. Read on every due-list row (docs/PERFORMANCE.md),
    /// so straight from the text's UTF-8 storage.
    public var rawBytes: [UInt8] {
        var text = text
        return text.withUTF8 { utf8 in
            let hex = UnsafeBufferPointer(rebasing: utf8.dropFirst(CaseHandle.prefix.utf8.count))
            return [UInt8](unsafeUninitializedCapacity: CaseHandle.randomBytes) { bytes, count in
                // `init?` admitted only the prefix and lowercase hex digits.
                for index in 0..<CaseHandle.randomBytes {
                    bytes[index] = (CaseHandle.hexValue(hex[2 * index]) ?? 0) << 4 | (CaseHandle.hexValue(hex[2 * index + 1]) ?? 0)
                }
                count = CaseHandle.randomBytes
            }
        }
    }

    /// The value of a lowercase hex digit, or nil.
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: nil
        }
    }

    /// Case handles are not secrets like codes, but they are identifiers: logs print only this.
    public var description: String { "case_…" }
}
