/// The one error type of the RegistryCrypto module.
///
/// No case carries secret bytes; associated values are lengths, names of libsodium functions and
/// return codes, never inputs.
public enum CryptoError: Error, Equatable, Sendable {
    /// `sodium_init()` returned a negative value: libsodium cannot be used at all.
    case libraryUnavailable
    /// A libsodium call returned a failure code the caller did not expect.
    case libraryCallFailed(function: String, code: Int32)
    /// Secure memory could not be allocated (`sodium_malloc` returned NULL).
    case secureAllocationFailed(bytes: Int)
    /// An input had the wrong length for the operation.
    case invalidLength(what: String, expected: Int, actual: Int)
    /// An AEAD open failed: wrong key, wrong associated data, truncated or modified ciphertext.
    case authenticationFailed
    /// A hex string was malformed.
    case invalidHex
    /// A byte string was not the canonical encoding of a ristretto255 element (RFC 9496 §4.3.1).
    case invalidElement
    /// An element was the identity, which RFC 9497 §3.3 forbids at this point.
    case identityElement
    /// An input exceeded a protocol length limit (RFC 9497 inputs, RFC 9380 §5.3.1 parameters).
    case inputTooLong(what: String, limit: Int)
    /// RFC 9497 §3.2.1 DeriveKeyPair exhausted its counter.
    case deriveKeyPairFailed
    /// A patient code could not be parsed; the reason never repeats the input.
    case invalidPatientCode(PatientCodeProblem)
    /// A scalar was not the canonical encoding of an integer below the group order.
    case invalidScalar
    /// Parameters name an algorithm this version does not implement.
    case unsupportedAlgorithm(String)
    /// Argon2id could not run with the requested limits (usually: not enough memory).
    case passwordHashingFailed
}

/// Why a patient code was rejected. Deliberately free of the offending characters.
public enum PatientCodeProblem: String, Equatable, Sendable {
    case wrongLength = "wrong_length"
    case invalidCharacter = "invalid_character"
    case checkSymbolMismatch = "check_symbol_mismatch"
    case outOfRange = "out_of_range"
}
