import Foundation
import RegistryCore
import Testing

/// The case handle's shape and its bytes (docs/PROTOCOL.md: `case_` and 32 lowercase hex digits).
struct CaseHandleTests {
    @Test func rawBytesAreTheHexDigits() {
        for seed in 0..<256 {
            let bytes = (0..<16).map { UInt8(truncatingIfNeeded: seed &* 31 &+ $0 &* 17) }
            let text = "case_" + bytes.map { String(format: "%02x", $0) }.joined()
            let handle = CaseHandle(text)
            #expect(handle?.text == text)
            #expect(handle?.rawBytes == bytes)
        }
    }

    @Test(arguments: [
        "", "case_", "case_0123456789abcdef0123456789abcde", "case_0123456789abcdef0123456789abcdef0",
        "case_0123456789ABCDEF0123456789abcdef", "Case_0123456789abcdef0123456789abcdef", "case-0123456789abcdef0123456789abcdef",
        "case_0123456789abcdeg0123456789abcdef", "case_0123456789abcdef0123456789abcde\u{00e9}", "xcase_0123456789abcdef0123456789abcde",
        " case_0123456789abcdef0123456789abcdef", "case_0123456789abcdef 0123456789abcde",
    ])
    func malformedHandlesAreRefused(_ text: String) {
        #expect(CaseHandle(text) == nil)
    }
}
