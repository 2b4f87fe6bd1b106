/// The one error type of RegistryCore: why the domain refused a request. The server maps each
/// `kind` to an HTTP status in one place (`APIError.from` in RegistryServer). Messages never contain
/// a code, a linkage value, a note or key bytes.
public struct DomainError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Malformed input (400).
        case badRequest
        /// Well-formed but refused by the rules (422).
        case unprocessable
        /// No such case or code (404).
        case notFound
        /// Refused by a standing policy that a retry does not change, such as a spent privacy
        /// budget (403).
        case refused
        /// Disk full (507).
        case storageFull
        /// Anything else (500).
        case internalError
    }

    public var kind: Kind
    public var code: String
    public var message: String

    public init(_ kind: Kind, _ code: String, _ message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    static let consentRequired = DomainError(.unprocessable, "consent_required", "enrolment needs a consent record (form, givenOn, method, scope); nothing was stored")
    static let caseNotFound = DomainError(.notFound, "case_not_found", "no such case at this clinic")
    static let codeNotFound = DomainError(.notFound, "code_not_found", "no subject holds that code; check it for typos")

    static func invalidConsent(_ why: String) -> DomainError { DomainError(.unprocessable, "invalid_consent", why + "; nothing was stored") }
    static func invalidDate(_ why: String) -> DomainError { DomainError(.unprocessable, "invalid_date", why) }
    static func unknownCategory(_ known: [String]) -> DomainError {
        DomainError(.unprocessable, "unknown_category", "category must be one of: \(known.sorted().joined(separator: ", "))")
    }
    static func internalFailure(_ why: String) -> DomainError { DomainError(.internalError, "internal_error", why) }

    /// Maps the storage seam's errors.
    public static func storage(_ error: StorageError) -> DomainError {
        switch error {
        case .caseNotFound: .caseNotFound
        case .codeNotFound: .codeNotFound
        case .storageFull: DomainError(.storageFull, "storage_full", "the registry's disk is full; the write was not stored, reads still work")
        case .rejected(let code, let message):
            switch code {
            case "internal_error": DomainError(.internalError, code, message)
            case "privacy_budget_spent": DomainError(.refused, code, message)
            default: DomainError(.unprocessable, code, message)
            }
        case .tampered, .keyUnavailable, .unusableDatabase, .database:
            DomainError(.internalError, "internal_error", "the registry could not complete the request")
        }
    }

    /// Carries a domain refusal through the storage seam's `update` closure.
    var asStorageRejection: StorageError { .rejected(code: code, message: message) }
}
