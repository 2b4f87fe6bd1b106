import RegistryProtocol
import RegistryText

/// The monitoring workflow: what each protocol v1 call means, on top of the storage seam.
/// Pure logic plus storage calls; the server only decodes, authorises and encodes.
public struct MonitoringService: Sendable {
    public let storage: any RegistryStorage
    public let rules: MonitoringRules
    public let clock: any DayClock

    public init(storage: any RegistryStorage, rules: MonitoringRules, clock: any DayClock) {
        self.storage = storage
        self.rules = rules
        self.clock = clock
    }

    // MARK: - Enrolment

    /// Enrols a subject. Without a valid consent nothing is stored (422; the rules are in
    /// `MonitoringService+Consent.swift`). A linkage value is used the same way whether or not it
    /// was seen before, and the answer never depends on it. `language` is that of the answer's `reason` (docs/PROTOCOL.md §Languages).
    public func enrol(clinic: ClinicID, _ request: EnrolRequest, language: Language = .en) async throws(DomainError) -> EnrolResponse {
        let today = clock.today
        guard let consentWire = request.consent else { throw .consentRequired }
        let consent = try validateConsent(consentWire, enrolledOn: request.enrolledOn, today: today, clinic: clinic)
        guard let policy = rules.categories[request.category] else { throw .unknownCategory(Array(rules.categories.keys)) }
        guard request.enrolledOn <= today else { throw .invalidDate("enrolledOn is in the future") }
        // The retention cap ends monitoring on enrolledOn + cap_days (the sweeper erases the
        // subject that day): an enrolment whose cap day is today or past would be erased at once,
        // so it is refused and nothing is stored (docs/PROTOCOL.md §Enrol).
        guard request.enrolledOn.days(until: today) < policy.capDays else {
            throw .invalidDate(
                "enrolledOn is the category's retention cap (\(policy.capDays) days) or more ago: monitoring would already have ended; nothing was stored"
            )
        }
        let linkage = try request.linkage.map { (hex) throws(DomainError) in try Self.parseLinkage(hex) }

        let episode = EpisodeRecord(category: request.category, enrolledOn: request.enrolledOn, clinic: clinic.rawValue, policy: policy)
        let state = MonitoringState(episode: episode, checkups: [])
        var counters: [CounterIncrement] = []
        if consent.allowsStatistics {
            counters.append(counter("enrolled", category: request.category, clinic: clinic, on: request.enrolledOn))
        }
        let records = [
            NewRecord(kind: .consent, plaintext: try RecordCodec.encode(consent)),
            NewRecord(kind: .episode, plaintext: try RecordCodec.encode(episode)),
        ]
        let summary = try state.summary(allowsStatistics: consent.allowsStatistics, enrolmentClinic: clinic.rawValue).encoded()
        let receipt: EnrolmentReceipt
        do {
            receipt = try await storage.enrol(
                Enrolment(
                    clinic: clinic, linkage: linkage, records: records,
                    columns: state.columns(retention: rules.retention), counters: counters,
                    // Unique persons are counted in the month the enrolment is recorded (always open),
                    // never in a closed month (docs/CRYPTO.md §Unique persons).
                    uniquePerson: consent.allowsStatistics && linkage != nil
                        ? UniquePersonMark(month: today.month, category: request.category) : nil,
                    summary: summary))
        } catch { throw .storage(error) }
        return EnrolResponse(case: receipt.caseHandle.text, code: receipt.code, monitoring: state.wire(on: today, language: language))
    }

    // MARK: - Cases

    public func status(clinic: ClinicID, case handle: CaseHandle, language: Language = .en) async throws(DomainError) -> CaseStatusResponse
    {
        // The sealed summary alone (docs/STORAGE.md §Summary): a status read costs the same
        // whatever the history's length. A subject the backfill has not reached yet is folded
        // from its history.
        let view: SubjectView
        do { view = try await storage.summary(case: handle, clinic: clinic) } catch { throw .storage(error) }
        let state: MonitoringState
        if let summary = MonitoringSummary.opened(from: view) {
            state = MonitoringState(summary: summary)
        } else {
            let records = try await open(clinic: clinic, case: handle)
            state = MonitoringState(episode: records.episode, checkups: records.checkups)
        }
        return CaseStatusResponse(case: handle.text, monitoring: state.wire(on: clock.today, language: language))
    }

    public func checkups(clinic: ClinicID, case handle: CaseHandle) async throws(DomainError) -> CheckupsResponse {
        let records = try await open(clinic: clinic, case: handle)
        return CheckupsResponse(checkups: records.checkups.map(\.wire))
    }

    /// Records a check-up: dated today or earlier, not before enrolment, and not before the last
    /// check-up unless marked as a correction. Substances and treatments must come from the
    /// configured vocabularies. The new policy in force is recorded with it.
    public func addCheckup(
        clinic: ClinicID, case handle: CaseHandle, _ request: CheckupRequest,
        language: Language = .en
    ) async throws(DomainError) -> CheckupResponse {
        let today = clock.today
        let rules = self.rules
        try validateVocabulary(request)
        guard request.note.utf8.count <= 8192 else {
            throw DomainError(.badRequest, "invalid_value", "note must be at most 8192 bytes")
        }
        // docs/STORAGE.md §Changes: open, decide here in plain code, commit if unchanged. A
        // commit that lost a race with another change to this case decides again on what is
        // current, a bounded number of times.
        //
        // The decision starts from the sealed summary; the history is opened only when the
        // summary cannot decide exactly (none stored yet, a correction, a policy change:
        // `MonitoringState.appending`), so a check-up's cost does not grow with the history.
        for _ in 0..<Self.changeAttempts {
            var opened: OpenedSubject
            do { opened = try await storage.openForChange(case: handle, clinic: clinic, history: false) } catch { throw .storage(error) }
            var decision: CheckupDecision?
            do {
                decision = try Self.decideCheckup(view: opened.view, request: request, clinic: clinic, today: today, rules: rules)
                if decision == nil {
                    do { opened = try await storage.openForChange(case: handle, clinic: clinic, history: true) } catch {
                        throw DomainError.storage(error)
                    }
                    decision = try Self.decideCheckup(view: opened.view, request: request, clinic: clinic, today: today, rules: rules)
                }
            } catch let error as DomainError {
                throw error
            } catch {
                throw .internalFailure("the check-up could not be recorded")
            }
            guard let (change, checkup, state) = decision else { throw .internalFailure("the check-up could not be recorded") }
            do throws(StorageError) {
                try await storage.commit(change, case: handle, clinic: clinic, ifUnchanged: opened.stamp)
            } catch .subjectChanged {
                continue
            } catch {
                throw .storage(error)
            }
            return CheckupResponse(checkup: checkup.wire, monitoring: state.wire(on: today, language: language))
        }
        throw .concurrentChange
    }

    /// How many times a change is decided before it is answered `409 concurrent_change`: each
    /// lost race means another change to the same case committed in between, so this many in
    /// a row means the case is being written faster than it can be read.
    public static let changeAttempts = 8

    /// What a check-up appends and sets, the check-up as recorded, and the state after it.
    typealias CheckupDecision = (SubjectChange, CheckupRecord, MonitoringState)

    /// Decides a check-up on `view`: its whole history if it holds one, else its summary. Nil
    /// when the view holds only a summary and that cannot decide exactly (no summary, or
    /// `MonitoringState.appending` declines): the caller opens the history and decides again.
    /// Every refusal is the same from either, because each rule reads only what both hold.
    static func decideCheckup(
        view: SubjectView, request: CheckupRequest, clinic: ClinicID, today: Day, rules: MonitoringRules
    ) throws -> CheckupDecision? {
        let records: SubjectRecords?
        let summary: MonitoringSummary
        if view.records.isEmpty {
            guard let stored = MonitoringSummary.opened(from: view) else { return nil }
            (records, summary) = (nil, stored)
        } else {
            let history = try SubjectRecords(view)
            guard MonitoringSummary.agrees(view, with: history) else { throw DomainError.summaryDisagrees }
            (records, summary) = (history, MonitoringSummary(records: history))
        }
        let before = MonitoringState(summary: summary)
        guard request.on <= today else { throw DomainError.invalidDate("the check-up date is in the future") }
        guard request.on >= summary.enrolledOn else {
            throw DomainError.invalidDate("the check-up date is before enrolment (\(summary.enrolledOn))")
        }
        if let last = before.lastCheckup, request.on <= last, !request.correction {
            throw DomainError.invalidDate(
                request.on == last
                    ? "a check-up on \(last) is already recorded; send \"correction\": true to correct it"
                    : "the check-up date is before the last check-up (\(last)); send \"correction\": true to correct history")
        }
        if before.isCompleted && !request.correction {
            throw DomainError(.unprocessable, "monitoring_completed", "monitoring of this case is completed; only corrections are accepted")
        }
        // The policy in force now (from config); it reaches this episode with this check-up.
        let policy = rules.categories[summary.category] ?? before.policy
        if request.outcome == .relapse, policy.relapse == .clinician, request.relapseAction == nil {
            throw DomainError(
                .unprocessable, "relapse_action_required",
                "this category leaves relapse handling to the clinician: send relapseAction restart, extend or continue")
        }
        if request.relapseAction != nil, request.outcome != .relapse {
            throw DomainError(.unprocessable, "invalid_relapse_action", "relapseAction is only for relapse outcomes")
        }
        if request.relapseAction != nil, policy.relapse != .clinician {
            throw DomainError(
                .unprocessable, "invalid_relapse_action",
                "this category's relapse rule is \(policy.relapse.rawValue); relapseAction is only for categories whose rule is clinician")
        }
        let checkup = CheckupRecord(
            on: request.on, outcome: request.outcome, substances: request.substances, treatment: request.treatment,
            note: request.note, correction: request.correction,
            relapseAction: request.relapseAction,
            clinic: clinic.rawValue, recordedOn: today, policy: policy)
        let after: MonitoringState
        if let records {
            after = MonitoringState(episode: records.episode, checkups: records.checkups + [checkup])
        } else {
            guard let next = before.appending(checkup) else { return nil }
            after = next
        }
        var counters: [CounterIncrement] = []
        if summary.allowsStatistics {
            let metric = "checkup-\(request.outcome.rawValue)"
            counters.append(
                CounterIncrement(CounterKey(month: request.on.month, category: summary.category, clinic: clinic, metric: metric)))
            if after.isCompleted && !before.isCompleted {
                counters.append(
                    CounterIncrement(
                        CounterKey(month: after.completedOn!.month, category: summary.category, clinic: clinic, metric: "completed")))
            }
        }
        let change = SubjectChange(
            append: [NewRecord(kind: .checkup, plaintext: try RecordCodec.encode(checkup))],
            columns: after.columns(retention: rules.retention), counters: counters,
            summary: try after.summary(allowsStatistics: summary.allowsStatistics, enrolmentClinic: summary.enrolmentClinic).encoded())
        return (change, checkup, after)
    }

    func validateVocabulary(_ request: CheckupRequest) throws(DomainError) {
        for s in request.substances where !rules.substances.contains(s) {
            _ = s
            throw DomainError(
                .unprocessable, "unknown_substance",
                "substances must come from the configured vocabulary: \(rules.substances.joined(separator: ", "))")
        }
        for t in request.treatment where !rules.treatments.contains(t) {
            _ = t
            throw DomainError(
                .unprocessable, "unknown_treatment",
                "treatment must come from the configured vocabulary: \(rules.treatments.joined(separator: ", "))")
        }
        guard Set(request.substances).count == request.substances.count, Set(request.treatment).count == request.treatment.count else {
            throw DomainError(.badRequest, "invalid_value", "substances and treatment must not repeat a value")
        }
    }

    /// Draws a new patient code; the old one stops working.
    public func reissueCode(clinic: ClinicID, case handle: CaseHandle) async throws(DomainError) -> CodeResponse {
        do { return CodeResponse(code: try await storage.reissueCode(case: handle, clinic: clinic)) } catch { throw .storage(error) }
    }

    /// Withdrawal by the clinic holding the case: erased now.
    ///
    /// The erasure needs only the subject's authenticated row, which the store checks; the
    /// records give the statistics counter. If the records fail their integrity check (a record
    /// row deleted, a sealed byte or the wrapped key damaged), the subject is erased all the
    /// same, ledgered, without the counter, and its audit entry says so. Refusing it would leave
    /// the subject to the sweeper's integrity erasure, which is not ledgered, and a restore
    /// would then bring back someone who withdrew (docs/CRYPTO.md §Authenticated columns).
    public func withdraw(clinic: ClinicID, case handle: CaseHandle) async throws(DomainError) -> WithdrawResponse {
        let counters: [CounterIncrement]
        do {
            counters = withdrawalCounters(try await open(clinic: clinic, case: handle, checkingSummary: false), clinic: clinic)
        } catch let error where error.code == DomainError.integrityErrorCode {
            counters = Self.withdrawalWithoutRecords(error.diagnostic ?? error.message)
        }
        do { try await storage.erase(case: handle, clinic: clinic, counters: counters) } catch { throw .storage(error) }
        return WithdrawResponse()
    }

    /// Withdrawal by the patient's code, at any clinic: erased now, as above.
    public func withdraw(clinic: ClinicID, code: String) async throws(DomainError) -> WithdrawResponse {
        let counters: [CounterIncrement]
        do {
            counters = withdrawalCounters(try await open(code: code, checkingSummary: false), clinic: clinic)
        } catch let error where error.code == DomainError.integrityErrorCode {
            counters = Self.withdrawalWithoutRecords(error.diagnostic ?? error.message)
        }
        do { try await storage.erase(code: code, counters: counters) } catch { throw .storage(error) }
        return WithdrawResponse()
    }

    /// A withdrawal whose records failed to open: no counter (its category is sealed in them), a
    /// note in its audit entry, and the integrity failure marked for the server, which logs it
    /// at critical and counts it like any other (docs/OPERATIONS.md: alert on any increase). The
    /// erasure itself still needs the row to authenticate.
    static func withdrawalWithoutRecords(_ diagnostic: String) -> [CounterIncrement] {
        AuditRecorder.current?.note("its records failed their integrity check: erased without its statistics counter")
        AuditRecorder.current?.markIntegrityFailure(diagnostic)
        return []
    }

    func withdrawalCounters(_ records: SubjectRecords, clinic: ClinicID) -> [CounterIncrement] {
        guard records.consent.allowsStatistics else { return [] }
        return [counter("withdrawn", category: records.episode.category, clinic: clinic, on: clock.today)]
    }

    /// Links the subject holding `code` to `clinic`, so its history carries over.
    public func link(clinic: ClinicID, code: String) async throws(DomainError) -> CaseResponse {
        let record: NewRecord
        record = NewRecord(kind: .link, plaintext: try RecordCodec.encode(LinkRecord(clinic: clinic.rawValue, on: clock.today)))
        do {
            let handle = try await storage.link(code: code, clinic: clinic, record: record, counters: [])
            return CaseResponse(case: handle.text)
        } catch { throw .storage(error) }
    }

    /// Everything held about the subject holding `code`, in plain words (`summary` and the
    /// `reason` in `language`; the `self.*` messages of the catalogues).
    /// `accessLog` returns nil when the log cannot be read: the answer is then an error rather
    /// than a record that silently looks unaccessed.
    public func selfAccess(
        code: String, language: Language = .en,
        accessLog: @Sendable ([UInt8]) async -> [AccessLogEntry]? = { _ in [] }
    ) async throws(DomainError) -> SelfResponse {
        let view: SubjectView
        do { view = try await storage.subject(code: code) } catch { throw .storage(error) }
        let records = try SubjectRecords(view)
        guard MonitoringSummary.agrees(view, with: records) else { throw .summaryDisagrees }
        let today = clock.today
        let state = MonitoringState(episode: records.episode, checkups: records.checkups)
        guard let log = await accessLog(view.auditReference) else { throw .internalFailure("the access log could not be read") }
        let summary = Self.selfSummary(records: records, state: state, clinics: view.clinics, today: today, language: language)
        return SelfResponse(
            monitoring: state.wire(on: today, language: language), consent: records.consent.wire, checkups: records.checkups.map(\.wire),
            clinics: view.clinics.map(\.rawValue), accessLog: log, summary: summary)
    }

    /// The reason starts a sentence in the summary.
    static func sentenceCase(_ text: String) -> String {
        guard let first = text.first else { return text }
        return first.uppercased() + text.dropFirst()
    }

    static func selfSummary(records: SubjectRecords, state: MonitoringState, clinics: [ClinicID], today: Day, language: Language)
        -> [String]
    {
        func date(_ day: Day) -> String { Catalogue.date(day, language) }
        let consent = records.consent
        let scopes = consent.scope.map { Catalogue.text("scope.\($0.rawValue)", language) }
        let scope =
            scopes.count < 2
            ? scopes.joined()
            : Catalogue.text("list.and", language, ["a": scopes.dropLast().joined(separator: ", "), "b": scopes.last!])
        var summary = [
            Catalogue.text(
                "self.enrolled", language,
                [
                    "category": records.episode.category, "enrolledOn": date(records.episode.enrolledOn), "clinic": records.episode.clinic,
                ]),
            Catalogue.text(
                "self.consent", language,
                [
                    "givenOn": date(consent.givenOn), "method": Catalogue.text("consent.method.\(consent.method.rawValue)", language),
                    "form": consent.form, "scope": scope,
                ]),
            Catalogue.text(
                "self.status", language,
                [
                    "status": Catalogue.text("status.\(state.status(on: today))", language),
                    "reason": sentenceCase(state.reason(on: today, language: language)),
                ]),
            Catalogue.text("self.clinics", language, ["clinics": clinics.map(\.rawValue).joined(separator: ", ")]),
        ]
        for checkup in records.checkups {
            summary.append(
                Catalogue.text(
                    checkup.correction ? "self.checkupCorrection" : "self.checkup", language,
                    [
                        "on": date(checkup.on), "clinic": checkup.clinic,
                        "outcome": Catalogue.text("outcome.\(checkup.outcome.rawValue)", language),
                    ]))
        }
        summary.append(Catalogue.text("self.withdraw", language))
        return summary
    }

    /// This clinic's cases due before `day`.
    public func due(clinic: ClinicID, before day: Day) async throws(DomainError) -> DueResponse {
        let today = clock.today
        do {
            let cases = try await storage.casesDue(clinic: clinic, before: day)
            return DueResponse(
                before: day,
                cases: cases.map { due in
                    // The clear column holds only the date; the status words follow from it.
                    let status = today >= due.nextDue ? "due" : "active"
                    return DueCaseWire(case: due.caseHandle.text, nextCheckupDue: due.nextDue, status: status)
                })
        } catch { throw .storage(error) }
    }

    /// Counts an anonymous episode: no subject, no record, one counter.
    public func anonymousEpisode(clinic: ClinicID, _ request: AnonymousEpisodeRequest) async throws(DomainError) -> CountedResponse {
        guard rules.categories[request.category] != nil else { throw .unknownCategory(Array(rules.categories.keys)) }
        guard request.on <= clock.today else { throw .invalidDate("on is in the future") }
        do {
            try await storage.count([counter("anonymous-episode", category: request.category, clinic: clinic, on: request.on)])
        } catch { throw .storage(error) }
        return CountedResponse()
    }

    // MARK: - Helpers

    /// `checkingSummary` false is for a withdrawal: it decides nothing from the summary, its
    /// counter needs only the records, and a summary that disagrees must not cost it that
    /// counter or raise a false "records failed" (the next read of the history reports it).
    func open(clinic: ClinicID, case handle: CaseHandle, checkingSummary: Bool = true) async throws(DomainError) -> SubjectRecords {
        try await records(checkingSummary: checkingSummary) { try await storage.subject(case: handle, clinic: clinic) }
    }

    func open(code: String, checkingSummary: Bool = true) async throws(DomainError) -> SubjectRecords {
        try await records(checkingSummary: checkingSummary) { try await storage.subject(code: code) }
    }

    /// The subject's records decoded, every failure as its one DomainError. A stored summary
    /// that disagrees with them is an integrity failure (`MonitoringSummary.agrees`).
    private func records(checkingSummary: Bool, _ view: () async throws -> SubjectView) async throws(DomainError) -> SubjectRecords {
        do {
            let view = try await view()
            let records = try SubjectRecords(view)
            guard !checkingSummary || MonitoringSummary.agrees(view, with: records) else { throw DomainError.summaryDisagrees }
            return records
        } catch let error as DomainError {
            throw error
        } catch let error as StorageError {
            throw .storage(error)
        } catch {
            throw .internalFailure("unexpected error")
        }
    }

    func counter(_ metric: String, category: String, clinic: ClinicID, on day: Day) -> CounterIncrement {
        CounterIncrement(CounterKey(month: day.month, category: category, clinic: clinic, metric: metric))
    }
}
