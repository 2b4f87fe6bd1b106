/// Protocol v1 request and response bodies (docs/PROTOCOL.md, docs/openapi.yaml). Requests
/// decode strictly: unknown fields, wrong types and malformed dates are `WireError`s.

// MARK: - Errors

/// `{"error":{"code":"snake_case","message":"..."}}`, the body of every non-2xx answer.
public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        /// The position of the offending element in a batch (`invalid_element` on a batch only).
        public var index: Int?
    }
    public var error: Detail

    public init(code: String, message: String, index: Int? = nil) { error = Detail(code: code, message: message, index: index) }
}

// MARK: - Health

public struct HealthResponse: Codable, Sendable, Equatable {
    public var status: String
    public var version: String
    public init(status: String, version: String) {
        self.status = status
        self.version = version
    }
}

// MARK: - OPRF

/// `{"blindedElement": hex}` (one evaluation) or `{"blindedElements": [hex, ...]}` (a batch of 1 to
/// `maxBatch`), never both (docs/PROTOCOL.md §POST /v1/oprf/evaluate).
public struct OPRFEvaluateRequest: Decodable, Sendable {
    public enum Elements: Sendable, Equatable {
        case single(String)
        case batch([String])
    }

    /// The most elements one batch may hold.
    public static let maxBatch = 100

    public var elements: Elements

    enum CodingKeys: String, CodingKey, CaseIterable { case blindedElement, blindedElements }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let single = try c.optionalField(String.self, .blindedElement)
        let batch = try c.optionalField([String].self, .blindedElements)
        switch (single, batch) {
        case (nil, nil):
            throw WireError.missingField("blindedElement")
        case (.some, .some):
            throw WireError.invalidValue(field: "blindedElements", reason: "cannot be sent together with blindedElement; send one of them")
        case (let one?, nil):
            elements = .single(one)
        case (nil, let many?):
            guard (1...Self.maxBatch).contains(many.count) else {
                throw WireError.invalidValue(
                    field: "blindedElements", reason: "must hold 1 to \(Self.maxBatch) elements; it holds \(many.count)")
            }
            elements = .batch(many)
        }
    }
}

public struct OPRFEvaluateResponse: Codable, Sendable, Equatable {
    public var evaluationElement: String
    public init(evaluationElement: String) { self.evaluationElement = evaluationElement }
}

/// The answer to a batch: `evaluationElements[i]` is the evaluation of `blindedElements[i]`.
public struct OPRFBatchEvaluateResponse: Codable, Sendable, Equatable {
    public var evaluationElements: [String]
    public init(evaluationElements: [String]) { self.evaluationElements = evaluationElements }
}

// MARK: - Consent and enrolment

public enum ConsentMethod: String, Codable, Sendable, CaseIterable {
    case written
    case electronicSignature = "electronic-signature"
}

public enum ConsentScope: String, Codable, Sendable, CaseIterable {
    case monitoring
    case statistics
}

public struct ConsentWire: Codable, Sendable, Equatable {
    public var form: String
    public var givenOn: Day
    public var method: ConsentMethod
    public var scope: [ConsentScope]

    public init(form: String, givenOn: Day, method: ConsentMethod, scope: [ConsentScope]) {
        self.form = form
        self.givenOn = givenOn
        self.method = method
        self.scope = scope
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case form, givenOn, method, scope }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        form = try c.field(String.self, .form)
        givenOn = try c.field(Day.self, .givenOn)
        guard let method = ConsentMethod(rawValue: try c.field(String.self, .method)) else {
            throw WireError.invalidValue(field: "consent.method", reason: "must be \"written\" or \"electronic-signature\"")
        }
        self.method = method
        var scopes: [ConsentScope] = []
        for raw in try c.field([String].self, .scope) {
            guard let scope = ConsentScope(rawValue: raw) else {
                throw WireError.invalidValue(field: "consent.scope", reason: "may contain only \"monitoring\" and \"statistics\"")
            }
            scopes.append(scope)
        }
        scope = scopes
    }
}

public struct EnrolRequest: Decodable, Sendable {
    /// Optional on the wire so that a missing consent is a 422 `consent_required`, not a 400.
    public var consent: ConsentWire?
    public var category: String
    public var enrolledOn: Day
    /// 128 hex digits: the clinic-side RFC 9497 output.
    public var linkage: String?

    enum CodingKeys: String, CodingKey, CaseIterable { case consent, category, enrolledOn, linkage }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        consent = try c.optionalField(ConsentWire.self, .consent)
        category = try c.field(String.self, .category)
        enrolledOn = try c.field(Day.self, .enrolledOn)
        linkage = try c.optionalField(String.self, .linkage)
    }
}

/// Monitoring status of a case, computed from the category's policy.
public struct MonitoringWire: Codable, Sendable, Equatable {
    /// `active`, `due`, `overdue`, `completed` (or `erased` in a withdrawal answer).
    public var status: String
    public var category: String
    public var enrolledOn: Day
    public var lastCheckup: Day?
    public var nextCheckupDue: Day?
    public var remissionSince: Day?
    public var earliestEnd: Day?
    public var retentionCapOn: Day
    /// The status in plain words, e.g. "remission since 2026-02-01; 1095 days required; earliest end 2029-02-01".
    public var reason: String

    public init(
        status: String, category: String, enrolledOn: Day, lastCheckup: Day?, nextCheckupDue: Day?,
        remissionSince: Day?, earliestEnd: Day?, retentionCapOn: Day, reason: String
    ) {
        self.status = status
        self.category = category
        self.enrolledOn = enrolledOn
        self.lastCheckup = lastCheckup
        self.nextCheckupDue = nextCheckupDue
        self.remissionSince = remissionSince
        self.earliestEnd = earliestEnd
        self.retentionCapOn = retentionCapOn
        self.reason = reason
    }
}

public struct EnrolResponse: Codable, Sendable {
    public var `case`: String
    /// The patient code, shown once.
    public var code: String
    public var monitoring: MonitoringWire
    public init(case: String, code: String, monitoring: MonitoringWire) {
        self.case = `case`
        self.code = code
        self.monitoring = monitoring
    }
}

// MARK: - Codes, links, withdrawal

public struct CodeRequest: Decodable, Sendable {
    public var code: String
    enum CodingKeys: String, CodingKey, CaseIterable { case code }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        code = try decoder.container(keyedBy: CodingKeys.self).field(String.self, .code)
    }
}

public struct CaseResponse: Codable, Sendable, Equatable {
    public var `case`: String
    public init(case: String) { self.case = `case` }
}

public struct CodeResponse: Codable, Sendable, Equatable {
    public var code: String
    public init(code: String) { self.code = code }
}

public struct CaseStatusResponse: Codable, Sendable, Equatable {
    public var `case`: String
    public var monitoring: MonitoringWire
    public init(case: String, monitoring: MonitoringWire) {
        self.case = `case`
        self.monitoring = monitoring
    }
}

public struct WithdrawResponse: Codable, Sendable, Equatable {
    /// Always "erased".
    public var status: String
    public init() { status = "erased" }
}

// MARK: - Check-ups

public enum CheckupOutcome: String, Codable, Sendable, CaseIterable {
    case remission, relapse, missed, other
}

/// What a relapse does when the category's policy leaves it to the clinician.
public enum RelapseAction: String, Codable, Sendable, CaseIterable {
    case restart, extend
    /// Record the relapse without changing the remission clock.
    case `continue`
}

public struct CheckupRequest: Decodable, Sendable {
    public var on: Day
    public var outcome: CheckupOutcome
    public var substances: [String]
    public var treatment: [String]
    public var note: String
    /// Marks a check-up dated before the last one as a correction (kept as history).
    public var correction: Bool
    /// Required when the outcome is `relapse` and the category's policy is `clinician`.
    public var relapseAction: RelapseAction?

    enum CodingKeys: String, CodingKey, CaseIterable { case on, outcome, substances, treatment, note, correction, relapseAction }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        on = try c.field(Day.self, .on)
        guard let outcome = CheckupOutcome(rawValue: try c.field(String.self, .outcome)) else {
            throw WireError.invalidValue(field: "outcome", reason: "must be remission, relapse, missed or other")
        }
        self.outcome = outcome
        substances = try c.optionalField([String].self, .substances) ?? []
        treatment = try c.optionalField([String].self, .treatment) ?? []
        note = try c.optionalField(String.self, .note) ?? ""
        correction = try c.optionalField(Bool.self, .correction) ?? false
        if let raw = try c.optionalField(String.self, .relapseAction) {
            guard let action = RelapseAction(rawValue: raw) else {
                throw WireError.invalidValue(field: "relapseAction", reason: "must be restart, extend or continue")
            }
            relapseAction = action
        } else {
            relapseAction = nil
        }
    }
}

public struct CheckupWire: Codable, Sendable, Equatable {
    public var on: Day
    public var outcome: CheckupOutcome
    public var substances: [String]
    public var treatment: [String]
    public var note: String
    public var correction: Bool
    public var relapseAction: RelapseAction?
    /// The clinic that recorded it.
    public var clinic: String

    public init(
        on: Day, outcome: CheckupOutcome, substances: [String], treatment: [String], note: String,
        correction: Bool, relapseAction: RelapseAction?, clinic: String
    ) {
        self.on = on
        self.outcome = outcome
        self.substances = substances
        self.treatment = treatment
        self.note = note
        self.correction = correction
        self.relapseAction = relapseAction
        self.clinic = clinic
    }
}

public struct CheckupResponse: Codable, Sendable, Equatable {
    public var checkup: CheckupWire
    public var monitoring: MonitoringWire
    public init(checkup: CheckupWire, monitoring: MonitoringWire) {
        self.checkup = checkup
        self.monitoring = monitoring
    }
}

public struct CheckupsResponse: Codable, Sendable, Equatable {
    public var checkups: [CheckupWire]
    public init(checkups: [CheckupWire]) { self.checkups = checkups }
}

// MARK: - Self access

public struct SelfResponse: Codable, Sendable, Equatable {
    public var monitoring: MonitoringWire
    public var consent: ConsentWire
    public var checkups: [CheckupWire]
    /// Clinics holding a case for this subject.
    public var clinics: [String]
    /// Plain-words access log (filled by the audit log).
    public var accessLog: [AccessLogEntry]
    /// Everything above, as sentences a patient can read.
    public var summary: [String]

    public init(
        monitoring: MonitoringWire, consent: ConsentWire, checkups: [CheckupWire], clinics: [String],
        accessLog: [AccessLogEntry], summary: [String]
    ) {
        self.monitoring = monitoring
        self.consent = consent
        self.checkups = checkups
        self.clinics = clinics
        self.accessLog = accessLog
        self.summary = summary
    }
}

public struct AccessLogEntry: Codable, Sendable, Equatable {
    public var at: String
    public var actor: String
    public var action: String
    public var text: String
    public init(at: String, actor: String, action: String, text: String) {
        self.at = at
        self.actor = actor
        self.action = action
        self.text = text
    }
}

// MARK: - Due list, anonymous episodes

public struct DueCaseWire: Codable, Sendable, Equatable {
    public var `case`: String
    public var nextCheckupDue: Day
    public var status: String
    public init(case: String, nextCheckupDue: Day, status: String) {
        self.case = `case`
        self.nextCheckupDue = nextCheckupDue
        self.status = status
    }
}

public struct DueResponse: Codable, Sendable, Equatable {
    public var before: Day
    public var cases: [DueCaseWire]
    public init(before: Day, cases: [DueCaseWire]) {
        self.before = before
        self.cases = cases
    }
}

public struct AnonymousEpisodeRequest: Decodable, Sendable {
    public var category: String
    public var on: Day
    enum CodingKeys: String, CodingKey, CaseIterable { case category, on }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        category = try c.field(String.self, .category)
        on = try c.field(Day.self, .on)
    }
}

public struct CountedResponse: Codable, Sendable, Equatable {
    /// Always "counted".
    public var status: String
    public init() { status = "counted" }
}

// MARK: - Admin: keys

public struct KEKVersionWire: Codable, Sendable, Equatable {
    public var version: Int
    public var status: String
    public var createdAt: String
    public var subjects: Int
    /// When the version was retired (ISO 8601), for retired and destroyed versions.
    public var retiredAt: String?
    /// When a staged version became primary (ISO 8601); absent for a version rotated in
    /// directly, which became primary at `createdAt`.
    public var promotedAt: String?
    public init(
        version: Int, status: String, createdAt: String, subjects: Int, retiredAt: String? = nil, promotedAt: String? = nil
    ) {
        self.version = version
        self.status = status
        self.createdAt = createdAt
        self.subjects = subjects
        self.retiredAt = retiredAt
        self.promotedAt = promotedAt
    }

    /// Since when this version wraps new data keys (or would, while staged).
    public var primarySince: String { promotedAt ?? createdAt }
}

public struct KeysStatusResponse: Codable, Sendable, Equatable {
    public var primary: Int
    public var versions: [KEKVersionWire]
    public var oprfPublicKey: String
    public var linkageEpoch: Int
    /// The Ed25519 key that signs audit checkpoints and database backup headers (hex).
    public var auditPublicKey: String?
    public init(primary: Int, versions: [KEKVersionWire], oprfPublicKey: String, linkageEpoch: Int, auditPublicKey: String? = nil) {
        self.primary = primary
        self.versions = versions
        self.oprfPublicKey = oprfPublicKey
        self.linkageEpoch = linkageEpoch
        self.auditPublicKey = auditPublicKey
    }
}

public struct RewrapRequest: Decodable, Sendable {
    public var batchSize: Int
    enum CodingKeys: String, CodingKey, CaseIterable { case batchSize }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batchSize = try c.optionalField(Int.self, .batchSize) ?? 1000
        guard (1...100_000).contains(batchSize) else {
            throw WireError.invalidValue(field: "batchSize", reason: "must be between 1 and 100000")
        }
    }
}

/// What a sweep did.
public struct SweepResponseWire: Codable, Sendable, Equatable {
    public var reviewed: Int
    public var kept: Int
    public var erasedCompleted: Int
    public var erasedCap: Int
    public var erasedInactive: Int
    /// Subjects that could not be reviewed and were skipped.
    public var failed: Int
    /// Subjects erased because their rows failed the integrity check (docs/CRYPTO.md
    /// §Authenticated columns), and case links removed for the same reason.
    public var erasedIntegrity: Int
    public var caseLinksRemoved: Int
    /// Integrity failures found but not acted on: too many to be tampering (a wrong keyring or a
    /// fault is likelier); nothing was erased.
    public var integritySuspended: Int
    public init(
        reviewed: Int, kept: Int, erasedCompleted: Int, erasedCap: Int, erasedInactive: Int, failed: Int,
        erasedIntegrity: Int = 0, caseLinksRemoved: Int = 0, integritySuspended: Int = 0
    ) {
        self.reviewed = reviewed
        self.kept = kept
        self.erasedCompleted = erasedCompleted
        self.erasedCap = erasedCap
        self.erasedInactive = erasedInactive
        self.failed = failed
        self.erasedIntegrity = erasedIntegrity
        self.caseLinksRemoved = caseLinksRemoved
        self.integritySuspended = integritySuspended
    }
}

public struct KEKVersionRequest: Decodable, Sendable {
    public var version: Int
    enum CodingKeys: String, CodingKey, CaseIterable { case version }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownFields(CodingKeys.self)
        version = try decoder.container(keyedBy: CodingKeys.self).field(Int.self, .version)
        // docs/openapi.yaml KEKVersionRequest: 1 to 2^31 - 1, the range the schema states.
        guard (1...Int(Int32.max)).contains(version) else {
            throw WireError.invalidValue(field: "version", reason: "must be a KEK version, 1 to 2147483647")
        }
    }
}

public struct RewrapResponse: Codable, Sendable, Equatable {
    public var rewrapped: Int
    public var remaining: Int
    public var primary: Int
    public init(rewrapped: Int, remaining: Int, primary: Int) {
        self.rewrapped = rewrapped
        self.remaining = remaining
        self.primary = primary
    }
}
