// swift-format-ignore-file: AlwaysUseLowerCamelCase
// The vector file's keys are RFC 9380's own names (DST, len_in_bytes, uniform_bytes).

import Testing

@testable import RegistryCrypto

/// RFC 9380 Appendix K.3, expand_message_xmd(SHA-512).
struct ExpandMessageXMDTests {
    struct VectorFile: Decodable {
        let DST: String
        let tests: [Vector]
    }
    struct Vector: Decodable, Sendable, CustomTestStringConvertible {
        let msg: String
        let len_in_bytes: String
        let uniform_bytes: String
        var testDescription: String { "\(msg.prefix(20)) → \(len_in_bytes)" }
    }

    static let file: VectorFile = try! VectorFiles.load(VectorFile.self, "expand_message_xmd_SHA512_38.json")

    @Test func allTenVectorsPresent() { #expect(Self.file.tests.count == 10) }

    @Test(arguments: file.tests)
    func vector(_ v: Vector) throws {
        let length = Int(v.len_in_bytes.dropFirst(2), radix: 16)!
        let out = try ExpandMessageXMD.expand(message: Array(v.msg.utf8), dst: Array(Self.file.DST.utf8), length: length)
        #expect(Hex.encode(out) == v.uniform_bytes)
    }

    @Test func rejectsLengthsOverTheLimit() {
        #expect(throws: CryptoError.self) {
            try ExpandMessageXMD.expand(message: [], dst: [1], length: 255 * 64 + 1)
        }
        #expect(throws: CryptoError.self) { try ExpandMessageXMD.expand(message: [], dst: [1], length: 0) }
    }

    @Test func oversizeDSTIsHashedFirst() throws {
        // RFC 9380 §5.3.3: a 256-byte DST behaves as H("H2C-OVERSIZE-DST-" ‖ DST).
        let long = [UInt8](repeating: 0x41, count: 256)
        let reduced = try ExpandMessageXMD.sha512(Array("H2C-OVERSIZE-DST-".utf8), long)
        let viaLong = try ExpandMessageXMD.expand(message: [1, 2], dst: long, length: 32)
        let viaReduced = try ExpandMessageXMD.expand(message: [1, 2], dst: reduced, length: 32)
        #expect(viaLong == viaReduced)
    }
}
