import Testing

@testable import RegistryCrypto

struct PatientCodeTests {
    static func code(fromHex h: String) throws -> PatientCode { PatientCode(bytes: try SecretBytes(hex: h)) }

    @Test func formatIsGroupedAndChecksummed() throws {
        let text = try Self.code(fromHex: "00000000000000000000000000000000").formatted()
        #expect(text == "0000-0000-0000-0000-0000-0000-000")
        let ones = try Self.code(fromHex: "ffffffffffffffffffffffffffffffff").formatted()
        // 2^128-1 = 0b11 then 125 ones in 5-bit groups: "7" then 25 "Z"; (2^128-1) mod 37 = 32 → "*".
        #expect(ones == "7ZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZ*")
    }

    @Test func roundTripsRandomCodes() throws {
        for _ in 0..<500 {
            let code = try PatientCode.generate()
            let text = code.formatted()
            #expect(text.count == 33)
            let parsed = try PatientCode.parse(text)
            let same1 = parsed.bytes.constantTimeEquals(code.bytes)
            #expect(same1)
        }
    }

    @Test func parsingToleratesCaseSpacesHyphensAndLookalikes() throws {
        let code = try Self.code(fromHex: "0123456789abcdeffedcba9876543210")
        let text = code.formatted()
        let variants = [
            text.lowercased(),
            text.replacingOccurrences(of: "-", with: " "),
            text.replacingOccurrences(of: "-", with: ""),
            "  " + text.replacingOccurrences(of: "-", with: " - ") + " ",
            text.replacingOccurrences(of: "0", with: "O").replacingOccurrences(of: "1", with: "l"),
        ]
        for variant in variants {
            let parsed = try PatientCode.parse(variant)
            let same2 = parsed.bytes.constantTimeEquals(code.bytes)
            #expect(same2)
        }
    }

    /// Every single-symbol substitution in every position is caught by the check symbol.
    @Test func everySingleSubstitutionIsDetected() throws {
        let code = try PatientCode.generate()
        let symbols = Array(code.formatted().utf8.filter { $0 != UInt8(ascii: "-") })
        let alphabet = PatientCode.alphabet
        var tried = 0
        for position in symbols.indices {
            let pool = position == symbols.count - 1 ? alphabet : Array(alphabet.prefix(32))
            for replacement in pool where replacement != symbols[position] {
                var typo = symbols
                typo[position] = replacement
                tried += 1
                #expect(throws: CryptoError.self) { try PatientCode.parse(String(decoding: typo, as: UTF8.self)) }
            }
        }
        #expect(tried == 26 * 31 + 36)
    }

    @Test func everyAdjacentTranspositionIsDetected() throws {
        let code = try PatientCode.generate()
        let symbols = Array(code.formatted().utf8.filter { $0 != UInt8(ascii: "-") })
        // Every adjacent pair, including the last data symbol with the check symbol.
        for i in 0..<(symbols.count - 1) where symbols[i] != symbols[i + 1] {
            var swapped = symbols
            swapped.swapAt(i, i + 1)
            #expect(throws: CryptoError.self) { try PatientCode.parse(String(decoding: swapped, as: UTF8.self)) }
        }
    }

    @Test func malformedInputsAreRefusedWithoutEchoingThem() throws {
        let cases: [(String, PatientCodeProblem)] = [
            ("", .wrongLength),
            ("ABCD", .wrongLength),
            ("0000-0000-0000-0000-0000-0000-0000", .wrongLength),
            ("0000-0000-0000-0000-0000-0000-00!", .invalidCharacter),
            ("0000-0000-0000-0000-0000-0000-0U0", .invalidCharacter),
            ("8000-0000-0000-0000-0000-0000-000", .outOfRange),
            ("0000-0000-0000-0000-0000-0000-001", .checkSymbolMismatch),
        ]
        for (text, problem) in cases {
            #expect(throws: CryptoError.invalidPatientCode(problem)) { try PatientCode.parse(text) }
        }
        // A Unicode look-alike is not silently folded.
        #expect(throws: CryptoError.self) { try PatientCode.parse("ＡＢＣＤ-0000-0000-0000-0000-0000-000") }
    }
}

struct SecretBytesTests {
    @Test func descriptionIsRedacted() throws {
        let secret = try SecretBytes(hex: "deadbeefdeadbeef")
        #expect(secret.description == "SecretBytes(8 bytes, redacted)")
        #expect(!secret.description.contains("dead"))
    }

    @Test func hexParsingIsStrict() {
        #expect(throws: CryptoError.invalidHex) { try SecretBytes(hex: "abc") }
        #expect(throws: CryptoError.invalidHex) { try SecretBytes(hex: "zz") }
        #expect(throws: CryptoError.invalidHex) { try SecretBytes(hex: "") }
        #expect(throws: CryptoError.invalidHex) { try Hex.decode("0g") }
    }

    @Test func equalityIsByContent() throws {
        let a = try SecretBytes(hex: "00ff")
        let b = try SecretBytes(hex: "00FF")
        let c = try SecretBytes(hex: "00fe")
        let same3 = a.constantTimeEquals(b)
        #expect(same3)
        let same4 = a.constantTimeEquals(c)
        #expect(!same4)
        let same5 = a.constantTimeEquals(try SecretBytes(hex: "00ff00"))
        #expect(!same5)
    }

    @Test func randomSecretsDiffer() throws {
        let same6 = (try SecretBytes.random(count: 32)).constantTimeEquals(try SecretBytes.random(count: 32))
        #expect(!same6)
    }

    @Test func zeroLengthIsRefused() {
        #expect(throws: CryptoError.self) { try SecretBytes.random(count: 0) }
    }
}
