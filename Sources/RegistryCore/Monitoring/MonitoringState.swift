import RegistryProtocol
import RegistryText

/// The monitoring state of one subject, computed from its records and the policy in force
/// (the policy recorded with the latest check-up, or at enrolment).
///
/// Rules (docs/PROTOCOL.md §Monitoring):
/// - Check-ups count in date order. A correction dated like an earlier check-up replaces it for
///   the computation; both stay in the history.
/// - The remission clock starts at the first `remission` check-up and runs while check-ups
///   stay `remission`, `missed` or `other`.
/// - A `relapse` restarts the clock (`restart`), adds `relapseExtendDays` to the requirement
///   (`extend`), or does what the check-up's `relapseAction` says (`clinician`; `continue`
///   leaves the clock alone).
/// - `earliestEnd` = remission start + required days. Monitoring completes at the first
///   `remission` check-up on or after `earliestEnd`.
/// - The next check-up is due `checkupIntervalDays` after the latest one (or enrolment). A case
///   is `due` from that day and `overdue` `overdueAfterDays` later.
public struct MonitoringState: Sendable, Equatable {
    public var category: String
    public var enrolledOn: Day
    public var policy: Policy
    public var lastCheckup: Day?
    public var remissionSince: Day?
    public var requiredRemissionDays: Int
    public var earliestEnd: Day?
    public var completedOn: Day?
    public var nextCheckupDue: Day?
    public var capOn: Day

    public var isCompleted: Bool { completedOn != nil }

    init(episode: EpisodeRecord, checkups: [CheckupRecord]) {
        let effective = MonitoringState.effective(checkups)
        let policy = checkups.last?.policy ?? episode.policy
        var fold = RemissionFold()
        for checkup in effective { fold.add(checkup, policy: policy) }
        self.init(category: episode.category, enrolledOn: episode.enrolledOn, policy: policy, lastCheckup: effective.last?.on, fold: fold)
    }

    /// The state a sealed summary records (docs/CRYPTO.md §Monitoring summary): the same fold,
    /// resumed rather than recomputed.
    init(summary: MonitoringSummary) {
        self.init(
            category: summary.category, enrolledOn: summary.enrolledOn, policy: summary.policy, lastCheckup: summary.lastCheckup,
            fold: RemissionFold(start: summary.remissionSince, extra: summary.extraRemissionDays, completed: summary.completedOn))
    }

    private init(category: String, enrolledOn: Day, policy: Policy, lastCheckup: Day?, fold: RemissionFold) {
        self.category = category
        self.enrolledOn = enrolledOn
        self.policy = policy
        self.lastCheckup = lastCheckup
        capOn = enrolledOn.adding(days: policy.capDays)
        remissionSince = fold.start
        requiredRemissionDays = policy.remissionDays + fold.extra
        earliestEnd = fold.start.map { $0.adding(days: requiredRemissionDays) }
        completedOn = fold.completed
        nextCheckupDue = fold.completed == nil ? (lastCheckup ?? enrolledOn).adding(days: policy.checkupIntervalDays) : nil
    }

    /// The state once `checkup` is recorded, computed from this state alone, or nil when that
    /// is not exact and the whole history must be folded again: a check-up dated on or before
    /// the last one (a correction replaces or reorders what was folded), or one recorded under
    /// another policy (the policy of the latest check-up governs the whole history). Otherwise
    /// the new check-up is the last in date order and the fold simply takes one more step,
    /// which is what `init(episode:checkups:)` would do (SummaryEquivalenceTests checks it).
    func appending(_ checkup: CheckupRecord) -> MonitoringState? {
        if let lastCheckup, checkup.on <= lastCheckup { return nil }
        guard checkup.policy == policy, checkup.on >= enrolledOn else { return nil }
        var fold = RemissionFold(start: remissionSince, extra: requiredRemissionDays - policy.remissionDays, completed: completedOn)
        fold.add(checkup, policy: policy)
        return MonitoringState(category: category, enrolledOn: enrolledOn, policy: policy, lastCheckup: checkup.on, fold: fold)
    }

    /// What the state needs to be resumed: the sealed summary's plaintext fields.
    func summary(allowsStatistics: Bool, enrolmentClinic: String) -> MonitoringSummary {
        MonitoringSummary(
            category: category, enrolledOn: enrolledOn, enrolmentClinic: enrolmentClinic, allowsStatistics: allowsStatistics,
            policy: policy, lastCheckup: lastCheckup, remissionSince: remissionSince,
            extraRemissionDays: requiredRemissionDays - policy.remissionDays, completedOn: completedOn)
    }

    /// Check-ups in date order; for equal dates the later-recorded one (a correction) wins.
    static func effective(_ checkups: [CheckupRecord]) -> [CheckupRecord] {
        var byDay: [Day: CheckupRecord] = [:]
        for checkup in checkups { byDay[checkup.on] = checkup }
        return byDay.values.sorted { $0.on < $1.on }
    }

    /// `active`, `due`, `overdue` or `completed` on `today`.
    public func status(on today: Day) -> String {
        if isCompleted { return "completed" }
        guard let due = nextCheckupDue else { return "active" }
        if today >= due.adding(days: policy.overdueAfterDays) { return "overdue" }
        if today >= due { return "due" }
        return "active"
    }

    /// The status in plain words, in `language` (the `reason.*` messages of the catalogues).
    /// English is the default: it is what the audit log and the API answer without
    /// `Accept-Language` (docs/PROTOCOL.md §Languages).
    public func reason(on today: Day, language: Language = .en) -> String {
        func date(_ day: Day) -> String { Catalogue.date(day, language) }
        let days = Catalogue.count("days", requiredRemissionDays, language)
        if let completedOn {
            return Catalogue.text(
                "reason.completed", language,
                [
                    "completedOn": date(completedOn), "days": days, "since": remissionSince.map(date) ?? "?",
                ])
        }
        var parts: [String] = []
        if let since = remissionSince, let end = earliestEnd {
            parts.append(Catalogue.text("reason.remission", language, ["since": date(since), "days": days, "end": date(end)]))
        } else if lastCheckup == nil {
            parts.append(Catalogue.text("reason.noCheckup", language, ["enrolledOn": date(enrolledOn)]))
        } else {
            parts.append(Catalogue.text("reason.noRemission", language, ["days": days]))
        }
        if let due = nextCheckupDue {
            switch status(on: today) {
            case "overdue":
                parts.append(
                    Catalogue.text(
                        "reason.overdue", language,
                        [
                            "overdueSince": date(due.adding(days: policy.overdueAfterDays)), "due": date(due),
                        ]))
            case "due": parts.append(Catalogue.text("reason.due", language, ["due": date(due)]))
            default: parts.append(Catalogue.text("reason.next", language, ["due": date(due)]))
            }
        }
        parts.append(Catalogue.text("reason.cap", language, ["capOn": date(capOn)]))
        return parts.joined(separator: "; ")
    }

    public func wire(on today: Day, language: Language = .en) -> MonitoringWire {
        MonitoringWire(
            status: status(on: today), category: category, enrolledOn: enrolledOn, lastCheckup: lastCheckup,
            nextCheckupDue: nextCheckupDue, remissionSince: remissionSince, earliestEnd: earliestEnd,
            retentionCapOn: capOn, reason: reason(on: today, language: language))
    }

    /// The clear columns the store keeps: due date for the due list, review date for the sweeper
    /// (completion grace, retention cap, or inactivity, whichever comes first).
    func columns(retention: Retention) -> SubjectColumns {
        if let completedOn {
            return SubjectColumns(
                status: .completed, nextDue: nil,
                reviewOn: min(completedOn.adding(days: retention.completedGraceDays), capOn))
        }
        let inactive = (lastCheckup ?? enrolledOn).adding(days: retention.inactiveDays)
        return SubjectColumns(status: .active, nextDue: nextCheckupDue, reviewOn: min(capOn, inactive))
    }
}

/// The remission clock folded over check-ups in date order (the rules above `MonitoringState`):
/// where it started, the days a relapse added, and the day monitoring completed.
struct RemissionFold: Sendable, Equatable {
    var start: Day? = nil
    var extra = 0
    var completed: Day? = nil

    mutating func add(_ checkup: CheckupRecord, policy: Policy) {
        guard completed == nil else { return }
        switch checkup.outcome {
        case .remission:
            if start == nil { start = checkup.on }
            if let s = start, checkup.on >= s.adding(days: policy.remissionDays + extra) { completed = checkup.on }
        case .relapse:
            let action: RelapseAction =
                switch policy.relapse {
                case .restart: .restart
                case .extend: .extend
                case .clinician: checkup.relapseAction ?? .restart
                }
            switch action {
            case .restart:
                start = nil
                extra = 0
            case .extend:
                extra += policy.relapseExtendDays
            case .continue:
                break
            }
        case .missed, .other:
            break
        }
    }
}
