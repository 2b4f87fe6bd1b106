import Testing

@testable import RegistryCrypto

/// RFC 9497 Appendix A.1.1 (ristretto255-SHA512, OPRF mode).
struct OPRFTests {
    struct VectorFile: Decodable {
        let contextString: String
        let vectors: [Vector]
    }
    struct Vector: Decodable, Sendable, CustomTestStringConvertible {
        let seed, keyInfo, skSm, input, blind, blindedElement, evaluationElement, output: String
        var testDescription: String { "input \(input)" }
    }

    static let file: VectorFile = try! VectorFiles.load(VectorFile.self, "oprf-ristretto255-sha512.json")

    @Test func contextStringMatchesRFC() {
        #expect(Hex.encode(OPRF.contextString) == Self.file.contextString)
    }

    @Test(arguments: file.vectors)
    func deriveKeyPair(_ v: Vector) throws {
        let key = try OPRFServerKey(seed: try SecretBytes(hex: v.seed), info: hex(v.keyInfo))
        key.withSecretScalar { #expect(Hex.encode($0) == v.skSm) }
    }

    @Test(arguments: file.vectors)
    func blindEvaluateFinalize(_ v: Vector) throws {
        let key = try OPRFServerKey(seed: try SecretBytes(hex: v.seed), info: hex(v.keyInfo))
        let request = try OPRFClient.blind(input: hex(v.input), blindHex: v.blind)
        #expect(Hex.encode(request.blindedElement) == v.blindedElement)
        let evaluated = try key.blindEvaluate(blindedElement: request.blindedElement)
        #expect(Hex.encode(evaluated) == v.evaluationElement)
        let output = try OPRFClient.finalize(input: hex(v.input), blind: request.blind, evaluatedElement: evaluated)
        #expect(Hex.encode(output) == v.output)
    }

    @Test(arguments: file.vectors)
    func evaluate(_ v: Vector) throws {
        let key = try OPRFServerKey(seed: try SecretBytes(hex: v.seed), info: hex(v.keyInfo))
        #expect(Hex.encode(try key.evaluate(input: hex(v.input))) == v.output)
    }

    @Test func randomBlindRoundTripMatchesEvaluate() throws {
        let key = try OPRFServerKey(seed: try SecretBytes.random(count: OPRF.seedBytes), info: Array("k".utf8))
        let input = Array("anna|1990-01-01".utf8)
        let first = try OPRFClient.blind(input: input)
        let second = try OPRFClient.blind(input: input)
        #expect(first.blindedElement != second.blindedElement, "blinds must be fresh")
        let out1 = try OPRFClient.finalize(
            input: input, blind: first.blind,
            evaluatedElement: try key.blindEvaluate(blindedElement: first.blindedElement))
        let out2 = try OPRFClient.finalize(
            input: input, blind: second.blind,
            evaluatedElement: try key.blindEvaluate(blindedElement: second.blindedElement))
        #expect(out1 == out2)
        #expect(out1 == (try key.evaluate(input: input)))
        #expect(out1.count == OPRF.outputBytes)
    }

    @Test func rejectsIdentityElement() throws {
        let key = try OPRFServerKey(seed: try SecretBytes.random(count: OPRF.seedBytes), info: [])
        #expect(throws: CryptoError.identityElement) {
            try key.blindEvaluate(blindedElement: [UInt8](repeating: 0, count: 32))
        }
    }

    @Test func rejectsNonCanonicalAndWrongLengthElements() throws {
        let key = try OPRFServerKey(seed: try SecretBytes.random(count: OPRF.seedBytes), info: [])
        // 2^255 - 1 is not a canonical field element encoding.
        var nonCanonical = [UInt8](repeating: 0xff, count: 32)
        nonCanonical[31] = 0x7f
        #expect(throws: CryptoError.invalidElement) { try key.blindEvaluate(blindedElement: nonCanonical) }
        // A negative field element (low bit set) is never a valid ristretto255 encoding.
        var negative = [UInt8](repeating: 0, count: 32)
        negative[0] = 1
        #expect(throws: CryptoError.invalidElement) { try key.blindEvaluate(blindedElement: negative) }
        #expect(throws: CryptoError.invalidElement) { try key.blindEvaluate(blindedElement: [1, 2, 3]) }
        #expect(throws: CryptoError.invalidElement) {
            try key.blindEvaluate(blindedElement: [UInt8](repeating: 0x11, count: 33))
        }
    }

    @Test func finalizeRejectsBadEvaluatedElement() throws {
        let request = try OPRFClient.blind(input: [1, 2, 3])
        #expect(throws: CryptoError.identityElement) {
            try OPRFClient.finalize(input: [1, 2, 3], blind: request.blind, evaluatedElement: [UInt8](repeating: 0, count: 32))
        }
    }

    @Test func rejectsOversizeInputs() throws {
        let key = try OPRFServerKey(seed: try SecretBytes.random(count: OPRF.seedBytes), info: [])
        let tooLong = [UInt8](repeating: 0x61, count: OPRF.maxInputBytes + 1)
        #expect(throws: CryptoError.inputTooLong(what: "oprf input", limit: OPRF.maxInputBytes)) {
            try OPRFClient.blind(input: tooLong)
        }
        #expect(throws: CryptoError.inputTooLong(what: "oprf input", limit: OPRF.maxInputBytes)) {
            try key.evaluate(input: tooLong)
        }
        // The limit itself is fine.
        _ = try key.evaluate(input: [UInt8](repeating: 0x61, count: OPRF.maxInputBytes))
    }

    @Test func rejectsWrongSeedLength() throws {
        #expect(throws: CryptoError.invalidLength(what: "oprf seed", expected: 32, actual: 16)) {
            try OPRFServerKey(seed: try SecretBytes.random(count: 16), info: [])
        }
    }

    @Test func nonCanonicalBlindScalarIsRejected() throws {
        // The group order L itself is not a canonical scalar.
        let order = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"
        #expect(throws: CryptoError.invalidScalar) { try Ristretto255.scalar(hex: order) }
    }
}
