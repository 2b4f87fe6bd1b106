import Testing

@testable import RegistryCrypto

/// Inputs found by the libFuzzer targets (docs/ROBUSTNESS.md), kept as regression tests.
struct FuzzRegressionTests {
    /// fuzz-crypto, 2026-11-22: 31 zero bytes then 0x80. The encoding of zero with the sign bit
    /// set is not canonical (RFC 9496 §4.3.1): DeserializeElement and Finalize must both refuse it.
    @Test func zeroWithTheTopBitSetIsRefusedEverywhere() throws {
        let element = [UInt8](repeating: 0, count: 31) + [0x80]
        #expect(throws: CryptoError.self) { try Ristretto255.validateElement(element) }
        let blinded = try OPRFClient.blind(input: Array("fuzz input".utf8))
        #expect(throws: CryptoError.self) {
            try OPRFClient.finalize(input: Array("fuzz input".utf8), blind: blinded.blind, evaluatedElement: element)
        }
        let server = try OPRFServerKey(seed: try SecretBytes.random(count: OPRF.seedBytes), info: [])
        #expect(throws: CryptoError.self) { try server.blindEvaluate(blindedElement: element) }
    }
}

extension FuzzRegressionTests {
    /// The same for any element: setting the top bit of a valid element's encoding must not
    /// give a second accepted encoding of it (libsodium 1.0.18 ignores the bit).
    @Test func aValidElementWithTheTopBitSetIsRefused() throws {
        let blinded = try OPRFClient.blind(input: Array("another input".utf8))
        var element = blinded.blindedElement
        try Ristretto255.validateElement(element)
        element[31] |= 0x80
        #expect(throws: CryptoError.invalidElement) { try Ristretto255.validateElement(element) }
    }
}
