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
        category = episode.category
        enrolledOn = episode.enrolledOn
        self.policy = policy
        capOn = episode.enrolledOn.adding(days: policy.capDays)
        lastCheckup = effective.last?.on

        var start: Day? = nil
        var extra = 0
        var completed: Day? = nil
        for checkup in effective where completed == nil {
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
        remissionSince = start
        requiredRemissionDays = policy.remissionDays + extra
        earliestEnd = start.map { $0.adding(days: requiredRemissionDays) }
        completedOn = completed
        nextCheckupDue = completed == nil ? (lastCheckup ?? enrolledOn).adding(days: policy.checkupIntervalDays) : nil
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
