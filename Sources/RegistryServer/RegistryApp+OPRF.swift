import Hummingbird
import RegistryCore
import RegistryCrypto
import RegistryProtocol

/// `POST /v1/oprf/evaluate`: the daemon's half of RFC 9497 (§3.3.1 BlindEvaluate), for one
/// element or a batch (docs/PROTOCOL.md §POST /v1/oprf/evaluate). The route took the request's
/// first rate-limit token before the body was read.
extension RegistryApp {
    /// Elements evaluated between yields, so that a batch of 100 scalar multiplications does not
    /// hold a worker thread for its whole length while other requests wait.
    static let oprfYieldEvery = 10

    func evaluateOPRF(_ elements: OPRFEvaluateRequest.Elements, clinic: ClinicID) async throws -> Response {
        let key = keys.current.oprfKey
        switch elements {
        case .single(let hex):
            guard let element = Self.blindedElement(hex) else { throw APIError.invalidElement }
            return try JSONBodies.response(OPRFEvaluateResponse(evaluationElement: Hex.encode(try key.blindEvaluate(element))))
        case .batch(let hexes):
            // A batch larger than the bucket could never be served: say so, rather than 429.
            guard hexes.count <= rateLimiter.capacity else {
                throw WireError.invalidValue(
                    field: "blindedElements",
                    reason: "may hold at most \(rateLimiter.capacity) elements on this registry (its oprf_burst)")
            }
            // Every element is deserialized before any is evaluated or charged: one invalid
            // element refuses the whole batch, and the answer names its index.
            var validated: [OPRFBlindedElement] = []
            validated.reserveCapacity(hexes.count)
            for (index, hex) in hexes.enumerated() {
                guard let element = Self.blindedElement(hex) else { throw APIError.invalidElement(index: index) }
                validated.append(element)
            }
            // Each element counts against the clinic's rate limit: the rest of the batch's
            // tokens are taken at once, or none.
            let decision = rateLimiter.decide(clinic, cost: validated.count - 1)
            guard decision.allowed else { throw APIError.RetryLater(error: .rateLimited, seconds: decision.retryAfterSeconds) }
            var evaluated: [String] = []
            evaluated.reserveCapacity(validated.count)
            for (i, element) in validated.enumerated() {
                if i > 0, i % Self.oprfYieldEvery == 0 { await Task.yield() }
                evaluated.append(Hex.encode(try key.blindEvaluate(element)))
            }
            // One audit entry per batch, with its count (docs/PROTOCOL.md §Audit).
            AuditRecorder.current?.note(evaluated.count == 1 ? "1 element" : "\(evaluated.count) elements")
            return try JSONBodies.response(OPRFBatchEvaluateResponse(evaluationElements: evaluated))
        }
    }

    /// 64 hex digits that DeserializeElement accepts, or nil.
    static func blindedElement(_ hex: String) -> OPRFBlindedElement? {
        guard hex.utf8.count == 2 * Ristretto255.elementBytes, let bytes = try? Hex.decode(hex) else { return nil }
        return try? OPRFBlindedElement(validating: bytes)
    }
}
