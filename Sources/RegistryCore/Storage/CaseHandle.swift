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
        let bytes = Array(text.utf8)
        guard bytes.count == CaseHandle.prefix.utf8.count + 2 * CaseHandle.randomBytes,
            text.hasPrefix(CaseHandle.prefix),
            bytes.dropFirst(CaseHandle.prefix.utf8.count).allSatisfy({
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
            })
        else { return nil }
        self.text = text
    }

    /// The 16 random bytes behind the text.
    public var rawBytes: [UInt8] {
        let hex = Array(text.utf8.dropFirst(CaseHandle.prefix.utf8.count))
        return stride(from: 0, to: hex.count, by: 2).map { i in
            func v(_ c: UInt8) -> UInt8 { c <= UInt8(ascii: "9") ? c - UInt8(ascii: "0") : c - UInt8(ascii: "a") + 10 }
            return v(hex[i]) << 4 | v(hex[i + 1])
        }
    }

    /// Case handles are not secrets like codes, but they are identifiers: logs print only this.
    public var description: String { "case_…" }
}
