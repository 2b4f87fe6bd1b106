import RegistryProtocol
import Testing

@testable import RegistryCore

/// Policy rules with explicit dates (docs/PROTOCOL.md §Monitoring).
struct MonitoringStateTests {
    static let policy = Policy(
        checkupIntervalDays: 90, remissionDays: 1095, relapse: .restart, relapseExtendDays: 180,
        capDays: 1825, overdueAfterDays: 30)

    static func episode(_ policy: Policy = policy, enrolled: String = "2026-01-01") -> EpisodeRecord {
        EpisodeRecord(category: "dependence", enrolledOn: Day(enrolled)!, clinic: "a", policy: policy)
    }

    static func checkup(
        _ on: String, _ outcome: CheckupOutcome, policy: Policy = policy, action: RelapseAction? = nil,
        correction: Bool = false
    ) -> CheckupRecord {
        CheckupRecord(
            on: Day(on)!, outcome: outcome, substances: [], treatment: [], note: "", correction: correction,
            relapseAction: action, clinic: "a", recordedOn: Day(on)!, policy: policy)
    }

    static func day(_ s: String) -> Day { Day(s)! }

    @Test func freshEnrolmentIsDueAfterOneInterval() {
        let state = MonitoringState(episode: Self.episode(), checkups: [])
        #expect(state.nextCheckupDue == Self.day("2026-04-01"))
        #expect(state.capOn == Self.day("2030-12-31"))
        #expect(state.earliestEnd == nil)
        #expect(state.status(on: Self.day("2026-03-31")) == "active")
        #expect(state.status(on: Self.day("2026-04-01")) == "due")
        #expect(state.status(on: Self.day("2026-04-30")) == "due")
        #expect(state.status(on: Self.day("2026-05-01")) == "overdue")
    }

    @Test func remissionStartsTheClock() {
        let state = MonitoringState(
            episode: Self.episode(), checkups: [Self.checkup("2026-02-01", .remission), Self.checkup("2026-05-01", .remission)])
        #expect(state.remissionSince == Self.day("2026-02-01"))
        #expect(state.earliestEnd == Self.day("2029-01-31"))
        #expect(state.nextCheckupDue == Self.day("2026-07-30"))
        #expect(
            state.reason(on: Self.day("2026-06-01")).hasPrefix("remission since 2026-02-01; 1095 days required; earliest end 2029-01-31"))
    }

    @Test func completionIsExactlyOnTheBoundaryDay() {
        let base = [Self.checkup("2026-02-01", .remission)]
        let dayBefore = MonitoringState(episode: Self.episode(), checkups: base + [Self.checkup("2029-01-30", .remission)])
        #expect(!dayBefore.isCompleted)
        let onTheDay = MonitoringState(episode: Self.episode(), checkups: base + [Self.checkup("2029-01-31", .remission)])
        #expect(onTheDay.completedOn == Self.day("2029-01-31"))
        #expect(onTheDay.status(on: Self.day("2029-02-01")) == "completed")
        #expect(onTheDay.nextCheckupDue == nil)
    }

    @Test func restartRelapseResetsTheClock() {
        let state = MonitoringState(
            episode: Self.episode(),
            checkups: [
                Self.checkup("2026-02-01", .remission), Self.checkup("2026-05-01", .relapse), Self.checkup("2026-08-01", .remission),
            ])
        #expect(state.remissionSince == Self.day("2026-08-01"))
        #expect(state.earliestEnd == Self.day("2029-07-31"))
    }

    @Test func extendRelapseAddsDays() {
        var policy = Self.policy
        policy.relapse = .extend
        let state = MonitoringState(
            episode: Self.episode(policy),
            checkups: [
                Self.checkup("2026-02-01", .remission, policy: policy), Self.checkup("2026-05-01", .relapse, policy: policy),
            ])
        #expect(state.remissionSince == Self.day("2026-02-01"))
        #expect(state.requiredRemissionDays == 1095 + 180)
        #expect(state.earliestEnd == Self.day("2026-02-01").adding(days: 1275))
    }

    @Test func clinicianRelapseFollowsTheCheckup() {
        var policy = Self.policy
        policy.relapse = .clinician
        let start = Self.checkup("2026-02-01", .remission, policy: policy)
        let kept = MonitoringState(
            episode: Self.episode(policy), checkups: [start, Self.checkup("2026-05-01", .relapse, policy: policy, action: .continue)])
        #expect(kept.remissionSince == Self.day("2026-02-01"))
        #expect(kept.requiredRemissionDays == 1095)
        let extended = MonitoringState(
            episode: Self.episode(policy), checkups: [start, Self.checkup("2026-05-01", .relapse, policy: policy, action: .extend)])
        #expect(extended.requiredRemissionDays == 1095 + 180)
        let restarted = MonitoringState(
            episode: Self.episode(policy), checkups: [start, Self.checkup("2026-05-01", .relapse, policy: policy, action: .restart)])
        #expect(restarted.remissionSince == nil)
    }

    @Test func missedCheckupsKeepTheClockButMoveTheDueDate() {
        let state = MonitoringState(
            episode: Self.episode(), checkups: [Self.checkup("2026-02-01", .remission), Self.checkup("2026-06-01", .missed)])
        #expect(state.remissionSince == Self.day("2026-02-01"))
        #expect(state.nextCheckupDue == Self.day("2026-08-30"))
    }

    @Test func aCorrectionReplacesTheSameDayForTheComputation() {
        let state = MonitoringState(
            episode: Self.episode(),
            checkups: [
                Self.checkup("2026-02-01", .remission), Self.checkup("2026-05-01", .relapse),
                Self.checkup("2026-05-01", .remission, correction: true),
            ])
        #expect(state.remissionSince == Self.day("2026-02-01"), "the relapse was corrected away")
        #expect(state.lastCheckup == Self.day("2026-05-01"))
    }

    @Test func aPolicyChangeAppliesFromTheNextCheckup() {
        var newPolicy = Self.policy
        newPolicy.remissionDays = 365
        let before = MonitoringState(episode: Self.episode(), checkups: [Self.checkup("2026-02-01", .remission)])
        #expect(before.requiredRemissionDays == 1095)
        let after = MonitoringState(
            episode: Self.episode(),
            checkups: [
                Self.checkup("2026-02-01", .remission), Self.checkup("2026-05-01", .remission, policy: newPolicy),
            ])
        #expect(after.requiredRemissionDays == 365)
    }

    @Test func clearColumnsDriveTheSweeper() {
        let retention = Retention(completedGraceDays: 30, inactiveDays: 400)
        let open = MonitoringState(episode: Self.episode(), checkups: [Self.checkup("2026-02-01", .remission)])
        #expect(
            open.columns(retention: retention)
                == SubjectColumns(status: .active, nextDue: Self.day("2026-05-02"), reviewOn: Self.day("2027-03-08")))
        let done = MonitoringState(
            episode: Self.episode(), checkups: [Self.checkup("2026-02-01", .remission), Self.checkup("2029-02-01", .remission)])
        #expect(done.columns(retention: retention) == SubjectColumns(status: .completed, nextDue: nil, reviewOn: Self.day("2029-03-03")))
        // The cap wins when it comes first.
        let capped = Retention(completedGraceDays: 30, inactiveDays: 36500)
        #expect(open.columns(retention: capped).reviewOn == open.capOn)
    }
}
