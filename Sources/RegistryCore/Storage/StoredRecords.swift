import RegistryProtocol

/// What a sealed record is. Part of every record's associated data (docs/CRYPTO.md §Records).
public enum RecordKind: String, Sendable, CaseIterable, Codable {
    /// The consent record given at enrolment.
    case consent
    /// The monitoring episode: category, enrolment date, policy snapshot.
    case episode
    /// One check-up (or a correction of one).
    case checkup
    /// A clinic's link to the subject: which clinic, when (the sealed side of a case).
    case link
}

/// A record to seal and append. `plaintext` is the domain's encoding (JSON); the store never
/// interprets it.
public struct NewRecord: Sendable {
    public var kind: RecordKind
    public var schemaVersion: UInt16
    public var plaintext: [UInt8]

    public init(kind: RecordKind, schemaVersion: UInt16 = 1, plaintext: [UInt8]) {
        self.kind = kind
        self.schemaVersion = schemaVersion
        self.plaintext = plaintext
    }
}

/// A record as opened from storage, in append order.
public struct StoredRecord: Sendable {
    public var id: Int64
    public var kind: RecordKind
    public var schemaVersion: UInt16
    public var plaintext: [UInt8]

    public init(id: Int64, kind: RecordKind, schemaVersion: UInt16, plaintext: [UInt8]) {
        self.id = id
        self.kind = kind
        self.schemaVersion = schemaVersion
        self.plaintext = plaintext
    }
}

/// Whether monitoring is still open. A subject that is erased has no row at all.
public enum SubjectStatus: String, Sendable, Codable, CaseIterable {
    case active
    case completed
}

/// The only facts about a subject kept in clear, because queries need them: the due list
/// (`nextDue`) and the sweeper (`reviewOn`: the first day anything could change without a new
/// check-up, such as completion, the retention cap or inactivity).
public struct SubjectColumns: Sendable, Equatable {
    public var status: SubjectStatus
    public var nextDue: Day?
    public var reviewOn: Day?

    public init(status: SubjectStatus, nextDue: Day?, reviewOn: Day?) {
        self.status = status
        self.nextDue = nextDue
        self.reviewOn = reviewOn
    }
}

/// Everything held about one subject, opened: its whole history, or only its summary
/// (`RegistryStorage.summary(case:clinic:)`, `openForChange(…, history: false)`), in which
/// case `records` and `clinics` are empty.
public struct SubjectView: Sendable {
    public var records: [StoredRecord]
    public var columns: SubjectColumns
    /// The clinics that hold a case for this subject.
    public var clinics: [ClinicID]
    /// Opaque reference for audit entries: a keyed hash, never the code or a case handle.
    public var auditReference: [UInt8]
    /// The sealed monitoring summary, opened (docs/CRYPTO.md §Monitoring summary), or nil when
    /// the subject has none yet (written before it existed, and not yet reached by the
    /// backfill). The store never interprets it.
    public var summary: [UInt8]?

    public init(
        records: [StoredRecord], columns: SubjectColumns, clinics: [ClinicID], auditReference: [UInt8], summary: [UInt8]? = nil
    ) {
        self.records = records
        self.columns = columns
        self.clinics = clinics
        self.auditReference = auditReference
        self.summary = summary
    }

    public func records(of kind: RecordKind) -> [StoredRecord] { records.filter { $0.kind == kind } }
}

/// What a change to a subject appends and sets, decided by the domain from the opened view.
public struct SubjectChange: Sendable {
    public var append: [NewRecord]
    public var columns: SubjectColumns
    public var counters: [CounterIncrement]
    /// The monitoring summary of the history once `append` is recorded, sealed by the store
    /// bound to that history (docs/CRYPTO.md §Monitoring summary). Nil stores none: a summary
    /// left beside a history it was not computed from would no longer open.
    public var summary: [UInt8]?

    public init(append: [NewRecord] = [], columns: SubjectColumns, counters: [CounterIncrement] = [], summary: [UInt8]? = nil) {
        self.append = append
        self.columns = columns
        self.counters = counters
        self.summary = summary
    }
}

/// A summary the backfill computed for a subject that had none (`RegistryStorage.storeSummaries`).
public struct SummaryUpdate: Sendable {
    public var subject: SubjectReference
    public var summary: [UInt8]
    /// The stamp of the open it was computed from: stored only if the subject is still so.
    public var stamp: SubjectStamp

    public init(subject: SubjectReference, summary: [UInt8], stamp: SubjectStamp) {
        self.subject = subject
        self.summary = summary
        self.stamp = stamp
    }
}
