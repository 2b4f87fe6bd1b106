import RegistryProtocol

/// The seam between the monitoring domain and its storage: subjects, cases, check-ups, erasure,
/// the sweeper's work and the month fold. A backend implements it together with the narrow
/// protocols beside it (`RegistryBackend`): `AuditStorage`, `StatisticsReleaseStorage`,
/// `KeyMaintenanceStorage`, `BackupStorage` and `StorageLifecycle`. `RegistryStore` implements
/// them over SQLite; a second backend implements the same protocols without touching the domain
/// or the server (docs/STORAGE.md §The storage contract).
///
/// Every method states an intent. Implementations must:
/// - seal every record under the subject's own data key (docs/CRYPTO.md §Envelope, §Records);
/// - make each completed write durable before returning (invariant 5);
/// - apply each call's counter increments in the same transaction as its event;
/// - keep a subject reachable by a clinic only through that clinic's case handle, or through
///   the patient code.
public protocol RegistryStorage: Sendable {
    /// Creates a subject with its first records and a case for `clinic`. A fresh patient code is
    /// drawn; its formatted text is returned once and never stored. A linkage value (the 64-byte
    /// RFC 9497 output) leaves nothing per subject: only the open month's unique-person tag, with
    /// statistics consent (`uniquePerson`), written the same way whether or not it was seen before.
    func enrol(_ enrolment: Enrolment) async throws(StorageError) -> EnrolmentReceipt

    /// The subject behind `handle`, if `clinic` holds that case.
    func subject(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView

    /// The subject behind `handle`, if `clinic` holds that case, with only its sealed monitoring
    /// summary opened: no record, no clinic list (docs/STORAGE.md §Summary). What a status read
    /// costs does not depend on the history's length. Names the subject in the request's audit
    /// recorder, as every read does.
    func summary(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView

    /// Opens the subject behind `handle`, if `clinic` holds that case, for a change: its view and
    /// the stamp `commit` checks (docs/STORAGE.md §Changes). With `history` false, the view
    /// holds only the summary (as `summary(case:clinic:)`); the domain opens the history when
    /// the summary is absent or the change needs it. Names the subject in the request's audit
    /// recorder, as a read does, so a refusal's entry names it.
    func openForChange(case handle: CaseHandle, clinic: ClinicID, history: Bool) async throws(StorageError) -> OpenedSubject

    /// Applies `change` to the subject behind `handle` only if it is still exactly as the open
    /// that issued `stamp` saw it, atomically with its counters and the request's audit entry.
    /// A subject changed since is `.subjectChanged`, and nothing is written.
    func commit(_ change: SubjectChange, case handle: CaseHandle, clinic: ClinicID, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError)

    /// Links the subject holding `code` to `clinic` (or returns the clinic's existing case).
    func link(code: String, clinic: ClinicID, record: NewRecord, counters: [CounterIncrement]) async throws(StorageError) -> CaseHandle

    /// Everything held about the subject holding `code`.
    func subject(code: String) async throws(StorageError) -> SubjectView

    /// Draws a new patient code for the subject behind `handle`; the old one stops working.
    func reissueCode(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> String

    /// Erases the subject behind `handle` (crypto-shredding), counting `counters`.
    func erase(case handle: CaseHandle, clinic: ClinicID, counters: [CounterIncrement]) async throws(StorageError)

    /// Erases the subject holding `code`.
    func erase(code: String, counters: [CounterIncrement]) async throws(StorageError)

    /// `clinic`'s cases whose next check-up is due before `day`, soonest first.
    func casesDue(clinic: ClinicID, before day: Day) async throws(StorageError) -> [DueCase]

    /// Adds counts that belong to no subject (anonymous episodes).
    func count(_ counters: [CounterIncrement]) async throws(StorageError)

    /// Subjects whose review date (`SubjectColumns.reviewOn`) is on or before `day`, oldest
    /// first, at most `limit`: the sweeper's work list. References are opaque and internal.
    func subjectsToReview(onOrBefore day: Day, limit: Int) async throws(StorageError) -> [SubjectReference]

    /// Opens a subject for the sweeper's review. A subject that fails its integrity check
    /// (docs/CRYPTO.md §Authenticated columns) is erased here, as `checkIntegrity` would, and is
    /// `.erasedIntegrity`: no review of it can be trusted. A subject already gone is `.gone`.
    func openForReview(_ subject: SubjectReference) async throws(StorageError) -> ReviewOpening

    /// Applies the sweeper's decision, keep (new clear columns) or erase (crypto-shredding, with
    /// counters), only if the subject is still as `stamp` says, atomically. A subject changed
    /// since is `.subjectChanged` (nothing written); one gone since is `.gone`.
    func commitReview(_ subject: SubjectReference, _ decision: SweepDecision, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError) -> SweepResult

    /// Subjects that have no monitoring summary, by reference after `after`, at most `limit`: the
    /// backfill's work list (docs/STORAGE.md §Summary). References are opaque and internal.
    func subjectsWithoutSummary(after: SubjectReference?, limit: Int) async throws(StorageError) -> [SubjectReference]

    /// Opens a subject's whole history for the backfill, with the stamp `storeSummaries` checks;
    /// nil if it is gone. An integrity failure throws, like any read: the backfill skips the
    /// subject and the sweeper's integrity check deals with it.
    func openForSummary(_ subject: SubjectReference) async throws(StorageError) -> OpenedSubject?

    /// Seals and stores each summary whose subject is still as its stamp says and still has
    /// none, in one transaction; the others are left for a later pass. Returns how many were
    /// stored. Writes nothing else: no record, no column, no audit entry.
    func storeSummaries(_ updates: [SummaryUpdate]) async throws(StorageError) -> Int

    /// Checks every subject row, record chain and case link against its MAC and the erasure
    /// ledger; erases each subject that fails and removes each case link that fails, auditing
    /// each as `actor` (docs/CRYPTO.md §Authenticated columns).
    func checkIntegrity(actor: String) async throws(StorageError) -> IntegrityReport

}

extension RegistryStorage {
    /// Opens the subject for a change with its whole history.
    public func openForChange(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> OpenedSubject {
        try await openForChange(case: handle, clinic: clinic, history: true)
    }
}

public struct Enrolment: Sendable {
    public var clinic: ClinicID
    /// The finalized OPRF output (64 bytes), if the clinic supplied one.
    public var linkage: [UInt8]?
    public var records: [NewRecord]
    public var columns: SubjectColumns
    public var counters: [CounterIncrement]
    /// Where to count the linkage value as a unique person (nil: not counted, e.g. no statistics
    /// consent). Ignored without a linkage value.
    public var uniquePerson: UniquePersonMark?
    /// The monitoring summary of `records` (`SubjectChange.summary`).
    public var summary: [UInt8]?

    public init(
        clinic: ClinicID, linkage: [UInt8]?, records: [NewRecord], columns: SubjectColumns, counters: [CounterIncrement],
        uniquePerson: UniquePersonMark? = nil, summary: [UInt8]? = nil
    ) {
        self.summary = summary
        self.clinic = clinic
        self.linkage = linkage
        self.records = records
        self.columns = columns
        self.counters = counters
        self.uniquePerson = uniquePerson
    }
}

public struct EnrolmentReceipt: Sendable {
    public var caseHandle: CaseHandle
    /// The patient code, formatted for the card. Shown once; never stored or logged.
    public var code: String
    public var view: SubjectView

    public init(caseHandle: CaseHandle, code: String, view: SubjectView) {
        self.caseHandle = caseHandle
        self.code = code
        self.view = view
    }
}

public struct DueCase: Sendable, Equatable {
    public var caseHandle: CaseHandle
    public var nextDue: Day
    public var status: SubjectStatus

    public init(caseHandle: CaseHandle, nextDue: Day, status: SubjectStatus) {
        self.caseHandle = caseHandle
        self.nextDue = nextDue
        self.status = status
    }
}

public struct RewrapProgress: Sendable, Equatable {
    public var rewrapped: Int
    public var remaining: Int
    public var primaryVersion: Int

    public init(rewrapped: Int, remaining: Int, primaryVersion: Int) {
        self.rewrapped = rewrapped
        self.remaining = remaining
        self.primaryVersion = primaryVersion
    }
}

/// An opaque reference to a subject for the sweeper; never leaves the daemon.
public struct SubjectReference: Hashable, Sendable {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
}

/// What a backend saw of a subject when it opened it: `commit` applies a change only while the
/// subject is still exactly so. Opaque outside the backend that issued it.
public struct SubjectStamp: Sendable, Equatable {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }
}

/// A subject opened for a change: what the domain decides on, and the stamp its commit checks.
public struct OpenedSubject: Sendable {
    public var view: SubjectView
    public var stamp: SubjectStamp

    public init(view: SubjectView, stamp: SubjectStamp) {
        self.view = view
        self.stamp = stamp
    }
}

/// What opening a subject for review found.
public enum ReviewOpening: Sendable {
    case opened(OpenedSubject)
    /// It failed its integrity check and was erased without a decision.
    case erasedIntegrity
    /// Erased since it was listed.
    case gone
}

public enum SweepDecision: Sendable, Equatable {
    case keep(SubjectColumns)
    case erase(counters: [CounterIncrement])
}

public enum SweepResult: Sendable, Equatable {
    case kept
    case erased
    /// The subject failed its integrity check (docs/CRYPTO.md §Authenticated columns) and was
    /// erased without a decision.
    case erasedIntegrity
    case gone
}

/// What a full integrity check found and did (docs/CRYPTO.md §Authenticated columns).
public struct IntegrityReport: Sendable, Equatable, Codable {
    public var subjectsChecked = 0
    public var caseLinksChecked = 0
    /// Subjects whose row, record set or ledger check failed: erased now.
    public var subjectsErased = 0
    /// Case links whose MAC failed: removed (the subject stays reachable by its code).
    public var caseLinksRemoved = 0
    /// Failures found but not acted on: so many that a wrong keyring or a fault is likelier than
    /// tampering (more than 10 and more than a quarter of the subjects). Nothing was erased.
    public var suspended = 0
    public var failures: Int { subjectsErased + caseLinksRemoved + suspended }
    public init() {}
}

/// A stored statistics release (differential privacy on): the exact answer body handed out the
/// first time, so asking again returns the same numbers rather than fresh noise.
public struct StoredRelease: Sendable, Equatable {
    /// The canonical query key (`StatsQuery.releaseKey`).
    public var query: String
    public var releasedOn: Day
    /// ε charged per month for this release, in millionths.
    public var epsilonMicro: Int
    /// The JSON answer body as first released.
    public var body: [UInt8]

    public init(query: String, releasedOn: Day, epsilonMicro: Int, body: [UInt8]) {
        self.query = query
        self.releasedOn = releasedOn
        self.epsilonMicro = epsilonMicro
        self.body = body
    }
}

/// The differential-privacy settings in force (config `[statistics]`), as recorded in the
/// store's history whenever they change (docs/CRYPTO.md §Differential privacy).
public struct PrivacySettings: Sendable, Equatable {
    public var privacy: Bool
    /// ε charged per month by each noisy release, in millionths.
    public var epsilonMicro: Int
    /// The most ε releases may spend on one month, in millionths.
    public var budgetMicro: Int

    public init(privacy: Bool, epsilonMicro: Int, budgetMicro: Int) {
        self.privacy = privacy
        self.epsilonMicro = epsilonMicro
        self.budgetMicro = budgetMicro
    }

    /// The audit log's text for these settings, e.g. `privacy=on epsilon=0.5 monthly_budget=2`.
    public var summary: String {
        "privacy=\(privacy ? "on" : "off") epsilon=\(Self.decimal(epsilonMicro)) monthly_budget=\(Self.decimal(budgetMicro))"
    }

    /// Whether finding `self` in force is a change to audit (`privacy-settings`): it differs
    /// from the last recorded settings or, when none are recorded yet, from `defaults` (the
    /// settings of a configuration that says nothing). So a registry whose first settings are
    /// the defaults records them silently, and one that starts with its own (differential
    /// privacy on, another ε or budget) has that decision in its audit log from the first start.
    public func isAuditedChange(after last: PrivacySettings?, defaults: PrivacySettings) -> Bool {
        self != (last ?? defaults)
    }

    /// Micro-ε as a decimal (1500000 → "1.5").
    public static func decimal(_ micro: Int) -> String {
        let whole = micro / 1_000_000
        var fraction = String(micro % 1_000_000)
        fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return fraction.isEmpty ? String(whole) : "\(whole).\(fraction)"
    }
}

/// One entry of the privacy settings' history: the day they were first seen in force.
public struct PrivacySettingsChange: Sendable, Equatable {
    public var recordedOn: Day
    public var settings: PrivacySettings

    public init(recordedOn: Day, settings: PrivacySettings) {
        self.recordedOn = recordedOn
        self.settings = settings
    }
}

/// A month's privacy budget: what releases spent, and the budget it is held to (the one
/// configured when its first noisy figure was released; nil for a month charged before that was
/// recorded).
public struct PrivacyBudgetMonth: Sendable, Equatable {
    public var month: Month
    public var spentMicro: Int
    public var capMicro: Int?

    public init(month: Month, spentMicro: Int, capMicro: Int?) {
        self.month = month
        self.spentMicro = spentMicro
        self.capMicro = capMicro
    }
}
