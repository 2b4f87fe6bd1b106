import HTTPTypes
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol

/// An error answer: status, snake_case code, message. Every failure becomes one of these in
/// `APIError.from(_:)`, the single place errors meet the wire (docs/PROTOCOL.md §Errors).
public struct APIError: Error, Sendable, Equatable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    /// The offending element's position in a batch (`invalid_element` on a batch).
    public var index: Int?

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, index: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.index = index
    }

    static let unknownPeer = APIError(
        .forbidden, "unknown_peer", "this uid/gid is not a clinic, admin, statistician or monitor in the registry's configuration")
    static func forbidden(_ rule: AccessRule, roles: [Role] = []) -> APIError {
        if rule == .statistics, let clinic = roles.lazy.compactMap({ if case .clinic(let id) = $0 { id } else { nil } }).first {
            return APIError(
                .forbidden, "forbidden",
                "statistics are never for a peer that acts as a clinic, and this uid/gid is clinic \(clinic); "
                    + "ask as an admin or statistician uid that is no clinic, or offline with `anonreg stats --state-dir` (docs/OPERATIONS.md §Statistics)"
            )
        }
        return APIError(.forbidden, "forbidden", "this route is for \(rule.rawValue) peers only")
    }
    static let notFound = APIError(.notFound, "not_found", "no such route; see docs/PROTOCOL.md")
    static let methodNotAllowed = APIError(.methodNotAllowed, "method_not_allowed", "this route does not accept that method")
    static func bodyTooLarge(_ limit: Int) -> APIError {
        APIError(.contentTooLarge, "body_too_large", "request bodies are limited to \(limit) bytes")
    }
    static let requestAbandoned = APIError(.requestTimeout, "request_timeout", "the request's body was not received completely in time")
    static func rateLimited(retryAfter: Int) -> APIError {
        APIError(.tooManyRequests, "rate_limited", "this clinic's budget for this kind of request is used up; retry after \(retryAfter) s")
    }
    static let malformedJSON = APIError(.badRequest, "malformed_json", "the body is not a JSON object")
    static let unsupportedMediaType = APIError(.unsupportedMediaType, "unsupported_media_type", "send Content-Type: application/json")
    static let rateLimited = APIError(.tooManyRequests, "rate_limited", "too many OPRF evaluations for this clinic; retry later")

    /// A 429 with the seconds its answer's `Retry-After` names.
    struct RetryLater: Error, Sendable {
        var error: APIError
        var seconds: Int
    }
    static let invalidElement = APIError(
        .badRequest, "invalid_element", "blindedElement must be 64 hex digits encoding a valid, non-identity ristretto255 element")
    static func invalidElement(index: Int) -> APIError {
        APIError(
            .badRequest, "invalid_element",
            "blindedElements[\(index)] must be 64 hex digits encoding a valid, non-identity ristretto255 element; nothing was evaluated",
            index: index)
    }
    static let invalidCase = APIError(.notFound, "case_not_found", "no such case at this clinic")
    static let storageFullMode = APIError(
        HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), "storage_full",
        "the registry's disk is full; data writes are refused until space returns, reads still work")
    /// The audit entry of a request could not be written because the disk is full.
    static let auditStorageFull = APIError(
        HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), "storage_full",
        "the audit log could not be written; the request's effect, if any, stands but is unacknowledged")
    static let auditFailed = APIError(.internalServerError, "audit_failed", "the audit log could not be written")
    /// The audit entry of a request could not be written because the database is out of reach.
    static let auditStorageUnavailable = APIError(
        .serviceUnavailable, "storage_unavailable",
        "the registry's database cannot be reached, so the request could not be audited; the request's effect, if any, stands but is unacknowledged"
    )
    // swift-format-ignore: DontRepeatTypeInStaticProperties
    // Named for its wire code, `internal_error`; `internal` alone is a keyword.
    static let internalError = APIError(.internalServerError, "internal_error", "the registry could not complete the request")

    /// The one mapping from any error to an answer. Messages come from fixed texts or from
    /// errors whose messages are built never to contain secrets.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as RetryLater:
            // The socket server adds its Retry-After header; any other caller still answers 429,
            // never 500 (found by fuzz-request once the OPRF bucket ran dry).
            return error.error
        case let error as WireError:
            return APIError(.badRequest, error.code, error.message)
        case let error as DomainError:
            let status: HTTPResponse.Status =
                switch error.kind {
                case .badRequest: .badRequest
                case .unprocessable: .unprocessableContent
                case .notFound: .notFound
                case .refused: .forbidden
                case .conflict: .conflict
                case .storageFull: HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage")
                case .unavailable: .serviceUnavailable
                case .internalError: .internalServerError
                }
            return APIError(status, error.code, error.message)
        case is DecodingError:
            return .malformedJSON
        case let error as CryptoError:
            switch error {
            case .invalidElement, .identityElement: return .invalidElement
            default: return .internalError
            }
        default:
            return .internalError
        }
    }

    /// What the daemon logs about a 500 besides the error's type: the underlying case of the
    /// error types built to carry no secret (StorageError, CryptoError, KeyringError, DomainError's
    /// diagnostic); nothing for any other error, whose text could hold request data.
    static func diagnostic(_ error: any Error) -> String {
        switch error {
        case let error as DomainError: error.diagnostic ?? error.code
        case let error as StorageError: "StorageError: \(error)"
        case let error as CryptoError: "CryptoError.\(error)"
        case let error as KeyringError: "KeyringError: \(error)"
        default: "-"
        }
    }

    var body: ErrorBody { ErrorBody(code: code, message: message, index: index) }
}
