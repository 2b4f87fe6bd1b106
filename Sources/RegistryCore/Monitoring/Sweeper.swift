import RegistryProtocol

/// Automatic forgetting (invariant 4). For every subject whose review date has come it:
/// - erases it once monitoring completed and the grace period passed (`erased-completed`);
/// - erases it at the retention cap, whatever else (`erased-cap`);
/// - erases it after `inactiveDays` without a check-up (`erased-inactive`);
/// - otherwise records its new status and review date (closing an episode whose remission
///   requirement the records now meet, for example after a correction).
/// Before that it checks the whole store's integrity (docs/CRYPTO.md §Authenticated columns): a
/// subject whose clear columns or records were changed behind anonreg's back is erased now,
/// whatever its review date says (`erasedIntegrity`), so that clearing `review_on` never lets
/// anyone escape forgetting.
/// Counters are kept only for subjects whose consent includes statistics. Running it twice on
/// the same day changes nothing the second time; each subject is its own transaction, so it is
/// safe while the daemon serves.
public struct Sweeper: Sendable {
    public let storage: any RegistryStorage & AuditStorage & StatisticsReleaseStorage
    public let rules: MonitoringRules
    public let clock: any DayClock
    /// Whether each run starts with the store's full integrity check (the daemon's sweeps do;
    /// a simulation of thousands of days may check less often).
    public let checksIntegrity: Bool

    /// The actor audit entries name for the sweeper's erasures.
    public static let auditActor = "system sweeper"

    public init(
        storage: any RegistryStorage & AuditStorage & StatisticsReleaseStorage, rules: MonitoringRules, clock: any DayClock,
        checksIntegrity: Bool = true
    ) {
        self.storage = storage
        self.rules = rules
        self.clock = clock
        self.checksIntegrity = checksIntegrity
    }

    public struct Report: Sendable, Equatable, Codable {
        public var reviewed = 0
        public var kept = 0
        public var erasedCompleted = 0
        public var erasedCap = 0
        public var erasedInactive = 0
        /// Subjects that failed their integrity check and were erased without a decision, and
        /// case links removed for the same reason.
        public var erasedIntegrity = 0
        public var caseLinksRemoved = 0
        /// Integrity failures not acted on (a mass failure: `IntegrityReport.suspended`).
        public var integritySuspended = 0
        /// Subjects that could not be reviewed (unreadable records, a missing key): skipped, so
        /// one bad subject never stops the forgetting of all the others. The daemon logs them.
        public var failed = 0
        public var erased: Int { erasedCompleted + erasedCap + erasedInactive + erasedIntegrity }
        public init() {}
    }

    /// Reviews every subject due for review today.
    public func run(batch: Int = 500) async throws(DomainError) -> Report {
        let today = clock.today
        var report = Report()
        if checksIntegrity {
            let integrity: IntegrityReport
            do { integrity = try await storage.checkIntegrity(actor: Self.auditActor) } catch { throw .storage(error) }
            report.erasedIntegrity += integrity.subjectsErased
            report.caseLinksRemoved += integrity.caseLinksRemoved
            report.integritySuspended += integrity.suspended
        }
        // Months that have ended are closed for unique persons: their tags become a count.
        do { _ = try await storage.foldUniquePersons(before: today.month) } catch { throw .storage(error) }
        var seen = Set<SubjectReference>()
        while true {
            let due: [SubjectReference]
            do { due = try await storage.subjectsToReview(onOrBefore: today, limit: batch) } catch { throw .storage(error) }
            // Subjects kept with a review date still due (cannot happen with consistent rules)
            // must not loop forever.
            let fresh = due.filter { !seen.contains($0) }
            if fresh.isEmpty { return report }
            for subject in fresh {
                seen.insert(subject)
                report.reviewed += 1
                let recorder = AuditRecorder(AuditRecorder.Action(actor: Self.auditActor, action: "review"))
                let result: SweepResult
                let cause: ErasureCause?
                do {
                    (result, cause) = try await AuditRecorder.$current.withValue(recorder) {
                        try await review(subject, today: today, recorder: recorder)
                    }
                } catch let error as StorageError where error == .storageFull {
                    throw .storage(error)
                } catch {
                    report.failed += 1
                    continue
                }
                // Erasures are audited in their own transaction (the entry keeps only a commitment
                // to the keyed reference, with no link back); a storage that cannot do that gets
                // the entry here.
                if result == .erased || result == .erasedIntegrity, !recorder.appendedWithEffect, let event = recorder.event(result: "ok") {
                    do { try await storage.appendAudit(event) } catch { throw .storage(error) }
                }
                switch (result, cause) {
                case (.erased, .completed?): report.erasedCompleted += 1
                case (.erased, .cap?): report.erasedCap += 1
                case (.erased, .inactive?): report.erasedInactive += 1
                case (.erasedIntegrity, _): report.erasedIntegrity += 1
                case (.kept, _): report.kept += 1
                default: break
                }
            }
        }
    }

    /// docs/STORAGE.md §Changes: open the subject, decide here in plain code, commit if
    /// unchanged; a commit that lost a race decides again, a bounded number of times. Throws
    /// what the storage throws, or the reason the subject's records could not be decided on.
    private func review(_ subject: SubjectReference, today: Day, recorder: AuditRecorder) async throws -> (SweepResult, ErasureCause?) {
        for _ in 0..<MonitoringService.changeAttempts {
            let opened: OpenedSubject
            switch try await storage.openForReview(subject) {
            case .gone: return (.gone, nil)
            case .erasedIntegrity: return (.erasedIntegrity, nil)
            case .opened(let subject): opened = subject
            }
            let (decision, cause) = try Self.decide(view: opened.view, today: today, rules: rules)
            // An erasure's entry is appended in the erasure's own transaction, under this name.
            if let cause {
                recorder.describe(AuditRecorder.Action(actor: Self.auditActor, action: "erase-\(cause.rawValue)"))
            }
            do throws(StorageError) {
                return (try await storage.commitReview(subject, decision, ifUnchanged: opened.stamp), cause)
            } catch .subjectChanged {
                recorder.describe(AuditRecorder.Action(actor: Self.auditActor, action: "review"))
                continue
            }
        }
        throw StorageError.subjectChanged
    }

    /// The decision for one subject on `today` (pure).
    static func decide(view: SubjectView, today: Day, rules: MonitoringRules) throws -> (SweepDecision, ErasureCause?) {
        let records = try SubjectRecords(view)
        let state = MonitoringState(episode: records.episode, checkups: records.checkups)
        let cause: ErasureCause?
        if today >= state.capOn {
            cause = .cap
        } else if let completed = state.completedOn, today >= completed.adding(days: rules.retention.completedGraceDays) {
            cause = .completed
        } else if !state.isCompleted, today >= (state.lastCheckup ?? state.enrolledOn).adding(days: rules.retention.inactiveDays) {
            cause = .inactive
        } else {
            cause = nil
        }
        guard let cause else { return (.keep(state.columns(retention: rules.retention)), nil) }
        var counters: [CounterIncrement] = []
        if records.consent.allowsStatistics {
            let metric =
                switch cause {
                case .cap: "erased-cap"
                case .completed: "erased-completed"
                case .inactive: "erased-inactive"
                case .withdrawn: "withdrawn"
                }
            counters.append(
                CounterIncrement(
                    CounterKey(
                        month: today.month, category: records.episode.category,
                        clinic: ClinicID(records.episode.clinic) ?? ClinicID("unknown")!, metric: metric)))
        }
        return (.erase(counters: counters), cause)
    }
}
