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
        /// The request lost a race with another change to the same case, again and again; nothing
        /// was written and a retry may succeed (409).
        case conflict
        /// Disk full (507).
        case storageFull
        /// The storage cannot serve now: a database out of reach, a node whose keyring is
        /// behind (503); nothing was written.
        case unavailable
        /// Anything else (500).
        case internalError
    }

    public var kind: Kind
    public var code: String
    public var message: String
    /// For the daemon's log only, never the wire: the underlying failure of an internal error
    /// (a `StorageError` case's text, which by design holds no code, handle, note or key).
    public var diagnostic: String? = nil

    /// Equal when the answer is: the diagnostic is not part of it.
    public static func == (a: DomainError, b: DomainError) -> Bool { a.kind == b.kind && a.code == b.code && a.message == b.message }

    public init(_ kind: Kind, _ code: String, _ message: String, diagnostic: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.diagnostic = diagnostic
    }

    public var description: String { "\(code): \(message)" }

    static let consentRequired = DomainError(
        .unprocessable, "consent_required", "enrolment needs a consent record (form, givenOn, method, scope); nothing was stored")
    static let caseNotFound = DomainError(.notFound, "case_not_found", "no such case at this clinic")
    static let codeNotFound = DomainError(.notFound, "code_not_found", "no subject holds that code; check it for typos")

    static func invalidConsent(_ why: String) -> DomainError {
        DomainError(.unprocessable, "invalid_consent", why + "; nothing was stored")
    }
    static func invalidDate(_ why: String) -> DomainError { DomainError(.unprocessable, "invalid_date", why) }
    static func unknownCategory(_ known: [String]) -> DomainError {
        DomainError(.unprocessable, "unknown_category", "category must be one of: \(known.sorted().joined(separator: ", "))")
    }
    public static let concurrentChange = DomainError(
        .conflict, "concurrent_change",
        "the case changed while this request was being decided, again on every retry; nothing was written; send it again")
    static func internalFailure(_ why: String) -> DomainError { DomainError(.internalError, "internal_error", why) }

    /// Maps the storage seam's errors.
    public static func storage(_ error: StorageError) -> DomainError {
        switch error {
        case .caseNotFound: .caseNotFound
        case .codeNotFound: .codeNotFound
        case .storageFull:
            DomainError(.storageFull, "storage_full", "the registry's disk is full; the write was not stored, reads still work")
        case .privacyBudgetSpent(let message): DomainError(.refused, "privacy_budget_spent", message)
        case .subjectChanged: .concurrentChange
        case .tampered, .integrity:
            // docs/PROTOCOL.md §Errors: the server logs it at critical and counts it; the request's
            // audit entry records the refusal. Nothing of the failing rows was served.
            DomainError(
                .internalError, integrityErrorCode,
                "the registry's data for this request failed an integrity check; nothing was served and the registry's admins are alerted",
                diagnostic: "StorageError: \(error)")
        case .unavailable:
            DomainError(
                .unavailable, "storage_unavailable",
                "the registry's database cannot be reached; nothing was stored; try again shortly", diagnostic: "StorageError: \(error)")
        case .keyringBehind(let version):
            DomainError(
                .unavailable, "keyring_behind",
                "this registry node lacks KEK version \(version), the registry's primary; it refuses writes until its admins install it",
                diagnostic: "StorageError: \(error)")
        case .keyUnavailable, .unusableDatabase, .database:
            DomainError(
                .internalError, "internal_error", "the registry could not complete the request", diagnostic: "StorageError: \(error)")
        }
    }

    /// A stored monitoring summary that opens but is not what the subject's history computes
    /// (`MonitoringSummary.agrees`): an integrity failure like any other.
    static let summaryDisagrees = DomainError.storage(.integrity(what: "monitoring summary (not what the history computes)"))

    /// The wire code of a storage integrity failure (500).
    public static let integrityErrorCode = "integrity_error"
}
