internal import CSodium

/// RFC 9497 OPRF, mode 0x00 (modeOPRF), suite ristretto255-SHA512 (§4.1).
///
/// The clinic side (`OPRFClient`) blinds and finalises; the daemon side (`OPRFServerKey`) holds
/// the secret scalar and runs BlindEvaluate. Neither ever sees the other's secret.
public enum OPRF {
    /// §3.1: contextString = "OPRFV1-" ‖ I2OSP(mode, 1) ‖ "-" ‖ identifier.
    public static let mode: UInt8 = 0x00
    public static let suiteIdentifier = "ristretto255-SHA512"
    public static let contextString: [UInt8] = Array("OPRFV1-".utf8) + [mode] + Array("-".utf8) + Array(suiteIdentifier.utf8)

    /// §4.1 and §3.2.1 domain-separation tags.
    static let hashToGroupDST: [UInt8] = Array("HashToGroup-".utf8) + contextString
    static let hashToScalarDST: [UInt8] = Array("HashToScalar-".utf8) + contextString
    static let deriveKeyPairDST: [UInt8] = Array("DeriveKeyPair".utf8) + contextString

    /// Inputs are length-prefixed with I2OSP(len, 2) in Finalize (§3.3.1), so 65535 is the limit.
    public static let maxInputBytes = 65535
    /// The OPRF output size: Nh of SHA-512.
    public static var outputBytes: Int { Int(crypto_hash_sha512_bytes()) }
    /// Nseed: DeriveKeyPair seeds are 32 bytes (§3.2.1).
    public static let seedBytes = 32

    /// §3.3.1 Finalize / §3.3.1 Evaluate's shared tail:
    /// Hash(I2OSP(len(input), 2) ‖ input ‖ I2OSP(len(element), 2) ‖ element ‖ "Finalize").
    static func finalHash(input: [UInt8], element: [UInt8]) throws(CryptoError) -> [UInt8] {
        try ExpandMessageXMD.sha512(
            i2osp2(input.count), input, i2osp2(element.count), element, Array("Finalize".utf8))
    }

    static func i2osp2(_ value: Int) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }

    static func checkInput(_ input: [UInt8]) throws(CryptoError) {
        guard input.count <= maxInputBytes else { throw .inputTooLong(what: "oprf input", limit: maxInputBytes) }
    }
}

/// The daemon's OPRF key pair (skS, pkS).
public final class OPRFServerKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let secretScalar: SecretBytes
    /// pkS = skS·G, SerializeElement form.
    public let publicKey: [UInt8]

    /// §3.2.1 DeriveKeyPair(seed, info):
    ///   deriveInput = seed ‖ I2OSP(len(info), 2) ‖ info
    ///   counter = 0; skS = 0
    ///   while skS == 0: (abort if counter > 255)
    ///     skS = HashToScalar(deriveInput ‖ I2OSP(counter, 1), DST = "DeriveKeyPair" ‖ contextString)
    ///     counter++
    ///   pkS = ScalarMultGen(skS)
    public init(seed: borrowing SecretBytes, info: [UInt8]) throws(CryptoError) {
        guard seed.count == OPRF.seedBytes else {
            throw .invalidLength(what: "oprf seed", expected: OPRF.seedBytes, actual: seed.count)
        }
        guard info.count <= OPRF.maxInputBytes else { throw .inputTooLong(what: "oprf key info", limit: OPRF.maxInputBytes) }
        let infoSuffix = OPRF.i2osp2(info.count) + info
        var counter = 0
        var candidate: SecretBytes? = nil
        while true {
            guard counter <= 255 else { throw .deriveKeyPairFailed }
            // deriveInput ‖ I2OSP(counter, 1), streamed: the seed goes from secure memory into the hash.
            let scalar = try Ristretto255.hashToScalar(dst: OPRF.deriveKeyPairDST) { (hasher) throws(CryptoError) in
                try seed.withUnsafeBytes { (bytes) throws(CryptoError) in try hasher.update(bytes) }
                try hasher.update(infoSuffix)
                try hasher.update([UInt8(counter)])
            }
            counter += 1
            if !Ristretto255.isZero(scalar) {
                candidate = consume scalar
                break
            }
        }
        let scalar = candidate.take()!
        self.publicKey = try Ristretto255.multiplyBase(scalar)
        self.secretScalar = scalar
    }

    /// §3.3.1 BlindEvaluate: evaluatedElement = skS · blindedElement, after DeserializeElement
    /// rejected non-canonical and identity inputs (answered as 400 `invalid_element`).
    public func blindEvaluate(blindedElement: [UInt8]) throws(CryptoError) -> [UInt8] {
        try blindEvaluate(try OPRFBlindedElement(validating: blindedElement))
    }

    /// §3.3.1 BlindEvaluate on an element already deserialized. A batch deserializes every
    /// element first, so that one invalid element refuses the whole batch before any evaluation.
    public func blindEvaluate(_ element: OPRFBlindedElement) throws(CryptoError) -> [UInt8] {
        try Ristretto255.multiply(secretScalar, element.bytes)
    }

    /// §3.3.1 Evaluate: the unblinded PRF output for an input the server knows.
    public func evaluate(input: [UInt8]) throws(CryptoError) -> [UInt8] {
        try OPRF.checkInput(input)
        let inputElement = try Ristretto255.hashToGroup(input, dst: OPRF.hashToGroupDST)
        if inputElement.allSatisfy({ $0 == 0 }) { throw .identityElement }
        let evaluated = try Ristretto255.multiply(secretScalar, inputElement)
        return try OPRF.finalHash(input: input, element: evaluated)
    }

    /// The secret scalar, for known-answer tests of DeriveKeyPair only.
    func withSecretScalar<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        secretScalar.withUnsafeBytes(body)
    }

    public var description: String { "OPRFServerKey(public: \(Hex.encode(publicKey)), secret redacted)" }
    public var debugDescription: String { description }
}

/// A blinded element that passed DeserializeElement (RFC 9497 §2.1: canonical, not the identity).
/// Only `init(validating:)` makes one, so `OPRFServerKey.blindEvaluate(_:)` never sees an
/// unchecked element.
public struct OPRFBlindedElement: Sendable {
    public let bytes: [UInt8]

    public init(validating bytes: [UInt8]) throws(CryptoError) {
        try Ristretto255.validateElement(bytes)
        self.bytes = bytes
    }
}

/// The clinic side: Blind and Finalize. Needs no key of the daemon's.
public enum OPRFClient {
    /// A blinded request: the secret blind stays with the client for Finalize.
    public struct BlindedInput: ~Copyable, Sendable {
        public let blind: SecretBytes
        public let blindedElement: [UInt8]
    }

    /// §3.3.1 Blind: blind = RandomScalar(); inputElement = HashToGroup(input);
    /// abort if inputElement is the identity; blindedElement = blind · inputElement.
    public static func blind(input: [UInt8]) throws(CryptoError) -> BlindedInput {
        try blind(input: input, blind: try Ristretto255.randomScalar())
    }

    /// Blind with a caller-chosen scalar (known-answer tests).
    static func blind(input: [UInt8], blind: consuming SecretBytes) throws(CryptoError) -> BlindedInput {
        try OPRF.checkInput(input)
        let inputElement = try Ristretto255.hashToGroup(input, dst: OPRF.hashToGroupDST)
        if inputElement.allSatisfy({ $0 == 0 }) { throw .identityElement }
        let blinded = try Ristretto255.multiply(blind, inputElement)
        return BlindedInput(blind: blind, blindedElement: blinded)
    }

    /// Blind with a hex scalar (known-answer tests).
    static func blind(input: [UInt8], blindHex: String) throws(CryptoError) -> BlindedInput {
        try blind(input: input, blind: try Ristretto255.scalar(hex: blindHex))
    }

    /// §3.3.1 Finalize: N = blind⁻¹ · evaluatedElement; output = Hash(I2OSP(len(input), 2) ‖
    /// input ‖ I2OSP(len(unblindedElement), 2) ‖ unblindedElement ‖ "Finalize").
    public static func finalize(
        input: [UInt8], blind: borrowing SecretBytes, evaluatedElement: [UInt8]
    ) throws(CryptoError) -> [UInt8] {
        try OPRF.checkInput(input)
        try Ristretto255.validateElement(evaluatedElement)
        let inverse = try Ristretto255.invert(blind)
        let unblinded = try Ristretto255.multiply(inverse, evaluatedElement)
        return try OPRF.finalHash(input: input, element: unblinded)
    }
}
