import AnonregTestSupport
import Foundation
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryCore
@testable import RegistryStore

/// The sealed monitoring summary (docs/CRYPTO.md §Monitoring summary) must always be what the
/// whole history computes: status reads and check-ups decide from it alone. Random sequences of
/// check-ups, corrections (same day and back-dated), relapses under every relapse rule, policy
/// changes, links and refused requests, on the real store; after every step the stored summary
/// must equal the one folded from the history, and the status answered from it the one the
/// history gives.
struct SummaryEquivalenceTests {
    static let category = "c"
    static let policies: [Policy] = [
        Policy(checkupIntervalDays: 30, remissionDays: 90, relapse: .restart, relapseExtendDays: 0, capDays: 4000, overdueAfterDays: 10),
        Policy(checkupIntervalDays: 30, remissionDays: 90, relapse: .extend, relapseExtendDays: 45, capDays: 4000, overdueAfterDays: 10),
        Policy(checkupIntervalDays: 21, remissionDays: 120, relapse: .clinician, relapseExtendDays: 30, capDays: 4000, overdueAfterDays: 7),
        Policy(checkupIntervalDays: 60, remissionDays: 60, relapse: .extend, relapseExtendDays: 10, capDays: 4000, overdueAfterDays: 20),
    ]
    static let clinicA = ClinicID("sum-a")!
    static let clinicB = ClinicID("sum-b")!

    static func rules(_ policy: Policy) -> MonitoringRules {
        MonitoringRules(
            categories: [category: policy], substances: ["opioids"], treatments: ["methadone"],
            retention: Retention(completedGraceDays: 30, inactiveDays: 400))
    }

    struct Counts {
        var forward = 0
        var corrections = 0
        var refused = 0
        var policyChanges = 0
        var links = 0
    }

    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func randomSequencesKeepTheSummaryEqualToTheHistory(seed: UInt64) async throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
        defer { try? store.close() }
        let racing = RacingStorage(store)
        var random = ThreeYearSimulationTests.SeededRandom(state: seed &* 7919)
        let start = Day("2025-01-01")!
        let clock = FixedDayClock(start)
        var policy = Self.policies[Int.random(in: 0..<Self.policies.count, using: &random)]
        var service = MonitoringService(storage: racing, rules: Self.rules(policy), clock: clock)

        var cases: [(handle: CaseHandle, code: String, enrolledOn: Day)] = []
        for i in 0..<4 {
            let scope = i % 2 == 0 ? "[\"monitoring\",\"statistics\"]" : "[\"monitoring\"]"
            let body =
                "{\"consent\":{\"form\":\"F\",\"givenOn\":\"\(start)\",\"method\":\"written\",\"scope\":\(scope)},\"category\":\"\(Self.category)\",\"enrolledOn\":\"\(start)\"}"
            let reply = try await service.enrol(clinic: Self.clinicA, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
            cases.append((CaseHandle(reply.case)!, reply.code, start))
            try await Self.expectSummaryMatchesHistory(store, cases[i].handle, service: service, context: "seed \(seed) enrol \(i)")
        }
        var counts = Counts()
        var lastCheckup: [Int: Day] = [:]
        let outcomes: [CheckupOutcome] = [.remission, .remission, .remission, .relapse, .missed, .other]
        let actions: [RelapseAction] = [.restart, .extend, .continue]
        for step in 0..<150 {
            clock.advance(days: Int.random(in: 0...12, using: &random))
            let today = clock.today
            let index = Int.random(in: 0..<cases.count, using: &random)
            let target = cases[index]
            let roll = Int.random(in: 0..<100, using: &random)
            if roll < 6 {
                policy = Self.policies[Int.random(in: 0..<Self.policies.count, using: &random)]
                service = MonitoringService(storage: racing, rules: Self.rules(policy), clock: clock)
                counts.policyChanges += 1
            } else if roll < 10 {
                _ = try await service.link(clinic: Self.clinicB, code: target.code)
                counts.links += 1
            } else {
                let outcome = outcomes[Int.random(in: 0..<outcomes.count, using: &random)]
                // Mostly today; sometimes the day of the last check-up again (a same-day
                // correction, or refused without the flag), or a day in the past, as a
                // correction or (refused) not.
                let on: Day
                let correction: Bool
                if roll < 25, let last = lastCheckup[index] {
                    (on, correction) = (last, roll < 22)
                } else if roll >= 75 {
                    on = today.adding(days: -Int.random(in: 0...max(0, target.enrolledOn.days(until: today)), using: &random))
                    correction = roll < 92
                } else {
                    (on, correction) = (today, false)
                }
                var fields = ["\"on\":\"\(on)\"", "\"outcome\":\"\(outcome.rawValue)\"", "\"correction\":\(correction)"]
                if outcome == .relapse, policy.relapse == .clinician {
                    fields.append("\"relapseAction\":\"\(actions[Int.random(in: 0..<actions.count, using: &random)].rawValue)\"")
                }
                let request = try JSONDecoder().decode(CheckupRequest.self, from: Data("{\(fields.joined(separator: ","))}".utf8))
                let refusal = await Self.refusal { () async throws(DomainError) in
                    _ = try await service.addCheckup(clinic: Self.clinicA, case: target.handle, request)
                }
                if refusal == nil { lastCheckup[index] = max(on, lastCheckup[index] ?? on) }
                switch refusal {
                case nil where correction: counts.corrections += 1
                case nil: counts.forward += 1
                case let error? where error.kind == .unprocessable: counts.refused += 1
                case let error?: throw error
                }
            }
            for c in cases {
                try await Self.expectSummaryMatchesHistory(store, c.handle, service: service, context: "seed \(seed) step \(step)")
            }
        }
        // The sequence exercised every path, and most forward check-ups decided from the
        // summary alone (the history is opened for corrections and after a policy change).
        #expect(counts.forward > 10 && counts.corrections > 5 && counts.refused > 0, "\(counts)")
        // The history is opened only for a correction, or for each case's first check-up after
        // a policy change; every other check-up decided from the summary alone.
        #expect(
            racing.historyOpens <= counts.corrections + cases.count * counts.policyChanges,
            "check-ups opened the whole history: \(racing.historyOpens) of \(racing.opens) opens, \(counts)")
    }

    /// The fold resumed from a state must be the fold of the whole history whenever
    /// `appending` accepts: random histories (same-day and earlier dates, every outcome and
    /// relapse action, policy changes), every prefix, under every policy.
    @Test func appendingIsTheFoldOfTheWholeHistory() throws {
        var random = ThreeYearSimulationTests.SeededRandom(state: 16)
        let episodeDay = Day("2025-01-01")!
        var accepted = 0
        var declined = 0
        for _ in 0..<3000 {
            let base = Self.policies[Int.random(in: 0..<Self.policies.count, using: &random)]
            let episode = EpisodeRecord(category: Self.category, enrolledOn: episodeDay, clinic: "a", policy: base)
            var history: [CheckupRecord] = []
            var day = episodeDay
            for _ in 0..<Int.random(in: 1...30, using: &random) {
                day = day.adding(days: Int.random(in: -20...40, using: &random))
                if day < episodeDay { day = episodeDay }
                let policy =
                    Int.random(in: 0..<10, using: &random) == 0
                    ? Self.policies[Int.random(in: 0..<Self.policies.count, using: &random)] : (history.last?.policy ?? base)
                let outcome = CheckupOutcome.allCases[Int.random(in: 0..<CheckupOutcome.allCases.count, using: &random)]
                let action: RelapseAction? =
                    outcome == .relapse && policy.relapse == .clinician
                    ? RelapseAction.allCases[Int.random(in: 0..<RelapseAction.allCases.count, using: &random)] : nil
                let next = CheckupRecord(
                    on: day, outcome: outcome, substances: [], treatment: [], note: "", correction: false, relapseAction: action,
                    clinic: "a", recordedOn: day, policy: policy)
                let before = MonitoringState(episode: episode, checkups: history)
                history.append(next)
                let whole = MonitoringState(episode: episode, checkups: history)
                if let resumed = before.appending(next) {
                    accepted += 1
                    #expect(resumed == whole, "appending \(next.on) \(outcome) to \(history.count - 1) check-ups")
                    #expect(MonitoringState(summary: resumed.summary(allowsStatistics: true, enrolmentClinic: "a")) == whole)
                } else {
                    declined += 1
                }
            }
        }
        #expect(accepted > 10_000 && declined > 1_000, "accepted \(accepted), declined \(declined)")
    }

    /// The domain's refusal of `body`, or nil if it succeeded.
    static func refusal(_ body: () async throws(DomainError) -> Void) async -> DomainError? {
        do throws(DomainError) {
            try await body()
            return nil
        } catch {
            return error
        }
    }

    /// The stored summary equals the one the history folds to, and a status read (which reads
    /// only the summary) answers what the history gives.
    static func expectSummaryMatchesHistory(
        _ store: SQLiteRegistryStore, _ handle: CaseHandle, clinic: ClinicID = clinicA, service: MonitoringService, context: String
    ) async throws {
        let view = try await store.openForChange(case: handle, clinic: clinic, history: true).view
        let records = try SubjectRecords(view)
        let stored = MonitoringSummary.opened(from: view)
        #expect(stored != nil, "\(context): no summary stored")
        #expect(stored == MonitoringSummary(records: records), "\(context): the summary differs from the history")
        let today = service.clock.today
        let fromHistory = MonitoringState(episode: records.episode, checkups: records.checkups).wire(on: today)
        #expect(try await service.status(clinic: clinic, case: handle).monitoring == fromHistory, "\(context): status")
    }
}
