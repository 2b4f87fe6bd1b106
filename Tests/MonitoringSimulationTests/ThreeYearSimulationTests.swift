import AnonregTestSupport
import Foundation
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryCore
@testable import RegistryStore

/// 10,000 subjects over three simulated years with random check-ups and a daily sweep. An
/// independent oracle (written here from the rules in docs/PROTOCOL.md, not from the code)
/// says which subjects must remain; the store must hold exactly those, the erased subjects'
/// sealed data must be gone from every file, and the counters must add up. Every month a sample
/// of the living must have the sealed monitoring summary their history computes.
struct ThreeYearSimulationTests {
    static let policy = Policy(
        checkupIntervalDays: 90, remissionDays: 365, relapse: .restart, relapseExtendDays: 0,
        capDays: 730, overdueAfterDays: 30)
    static let retention = Retention(completedGraceDays: 30, inactiveDays: 200)
    static let rules = MonitoringRules(
        categories: ["sim": policy], substances: ["opioids"], treatments: ["methadone"], retention: retention)
    static let clinic = ClinicID("sim-clinic")!

    /// What the test knows about one simulated person.
    struct Person {
        var index: Int
        var enrolledOn: Day
        var statistics: Bool
        var handle: CaseHandle? = nil
        var code: String? = nil
        var nextVisit: Day
        var attends = true
        var outcomes: [(Day, CheckupOutcome)] = []
        var remissionStart: Day? = nil
        var completedOn: Day? = nil
        var erasedOn: Day? = nil
        var erasedCause: String? = nil
        var traces: [[UInt8]] = []

        var lastActivity: Day { outcomes.last?.0 ?? enrolledOn }

        /// The oracle: apply one check-up with the restart rule.
        mutating func record(_ day: Day, _ outcome: CheckupOutcome) {
            outcomes.append((day, outcome))
            switch outcome {
            case .remission:
                if remissionStart == nil { remissionStart = day }
                if completedOn == nil, let s = remissionStart, s.days(until: day) >= ThreeYearSimulationTests.policy.remissionDays {
                    completedOn = day
                }
            case .relapse: remissionStart = nil
            case .missed, .other: break
            }
        }

        /// The oracle: the day the sweep must erase this person, if any, and why.
        var erasureTrigger: (Day, String) {
            let cap = enrolledOn.adding(days: ThreeYearSimulationTests.policy.capDays)
            var candidates = [(cap, "cap")]
            if let done = completedOn {
                candidates.append((done.adding(days: ThreeYearSimulationTests.retention.completedGraceDays), "completed"))
            } else {
                candidates.append((lastActivity.adding(days: ThreeYearSimulationTests.retention.inactiveDays), "inactive"))
            }
            // The cap wins ties, as in the rules.
            return candidates.min { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 == "cap") }!
        }
    }

    struct SeededRandom: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    // The limit only catches a hang: alone on 2 cores the test takes about 5 minutes, but with
    // other builds on the machine it has taken up to 24; its speed is not what it checks.
    @Test(.timeLimit(.minutes(40))) func tenThousandSubjectsOverThreeYears() async throws {
        let subjects = 10_000
        let tmp = TemporaryDirectory(base: FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : "/tmp")
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
        let start = Day("2026-01-01")!
        let clock = FixedDayClock(start)
        let service = MonitoringService(storage: store, rules: Self.rules, clock: clock)
        // The full integrity check (every row's MAC and record chain) runs with the first sweep of
        // each simulated month, not of every day: 1,095 daily scans of 10,000 subjects would cost
        // the test more than everything else together. A daemon runs it with every daily sweep.
        let sweeper = Sweeper(storage: store, rules: Self.rules, clock: clock, checksIntegrity: false)
        let checkingSweeper = Sweeper(storage: store, rules: Self.rules, clock: clock)
        var random = SeededRandom(state: 20261122)

        var people: [Person] = (0..<subjects).map { i in
            let enrolled = start.adding(days: Int.random(in: 0..<180, using: &random))
            return Person(
                index: i, enrolledOn: enrolled, statistics: Int.random(in: 0..<10, using: &random) != 0,
                nextVisit: enrolled.adding(days: 90 + Int.random(in: 0...10, using: &random)))
        }
        let end = start.adding(days: 3 * 365)
        var sweptTotal = Sweeper.Report()
        var summariesChecked = 0
        var day = start
        while day <= end {
            clock.set(day)
            // Enrolments of the day.
            let enrolling: [(Int, String)] = people.indices.filter { people[$0].enrolledOn == day }.map { i in
                let p = people[i]
                let scope = p.statistics ? "[\"monitoring\",\"statistics\"]" : "[\"monitoring\"]"
                return (
                    i,
                    "{\"consent\":{\"form\":\"SIM-\(i)\",\"givenOn\":\"\(p.enrolledOn)\",\"method\":\"written\",\"scope\":\(scope)},\"category\":\"sim\",\"enrolledOn\":\"\(p.enrolledOn)\"}"
                )
            }
            try await Self.parallel(enrolling) { body in
                let reply = try await service.enrol(clinic: Self.clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
                return (reply.case, reply.code)
            } apply: { i, result in
                people[i].handle = CaseHandle(result.0)
                people[i].code = result.1
            }
            // Check-ups of the day, for people who still attend and are neither completed nor erased.
            let visiting = people.indices.filter {
                people[$0].attends && people[$0].erasedOn == nil && people[$0].completedOn == nil
                    && people[$0].handle != nil && people[$0].nextVisit == day
            }
            var plans: [Int: CheckupOutcome] = [:]
            for i in visiting {
                let roll = Int.random(in: 0..<100, using: &random)
                plans[i] = roll < 80 ? .remission : roll < 90 ? .relapse : roll < 95 ? .missed : .other
            }
            let visits: [(Int, (CaseHandle, String))] = visiting.map { i in
                (i, (people[i].handle!, "{\"on\":\"\(day)\",\"outcome\":\"\(plans[i]!.rawValue)\",\"note\":\"SIM-NOTE-\(i)\"}"))
            }
            try await Self.parallel(visits) { visit in
                _ = try await service.addCheckup(
                    clinic: Self.clinic, case: visit.0, try JSONDecoder().decode(CheckupRequest.self, from: Data(visit.1.utf8)))
                return 0
            } apply: { i, _ in
                people[i].record(day, plans[i]!)
            }
            for i in visiting {
                people[i].nextVisit = day.adding(days: 90 + Int.random(in: -5...10, using: &random))
                if Int.random(in: 0..<100, using: &random) < 6 { people[i].attends = false }
            }
            // Sample subjects about to be erased today: capture what they have on disk first.
            for i in people.indices
            where i % 100 == 0 && people[i].handle != nil && people[i].erasedOn == nil
                && people[i].erasureTrigger.0 <= day
            {
                people[i].traces = try await store.storedTraces(case: people[i].handle!, clinic: Self.clinic)
            }
            let report = try await (day.description.hasSuffix("-01") ? checkingSweeper : sweeper).run()
            #expect(report.erasedIntegrity == 0 && report.caseLinksRemoved == 0, "day \(day): nothing was tampered with")
            sweptTotal.erasedCap += report.erasedCap
            sweptTotal.erasedCompleted += report.erasedCompleted
            sweptTotal.erasedInactive += report.erasedInactive
            // The oracle's erasures of the day.
            for i in people.indices where people[i].handle != nil && people[i].erasedOn == nil {
                let (trigger, cause) = people[i].erasureTrigger
                if trigger <= day {
                    people[i].erasedOn = day
                    people[i].erasedCause = cause
                }
            }
            #expect(report.erased == people.filter { $0.erasedOn == day }.count, "day \(day): sweep and oracle disagree")
            // On the first of each month, a sample of the living: the sealed monitoring summary
            // status reads and check-ups decide from is what the whole history computes.
            if day.description.hasSuffix("-01") {
                for p in people where p.index % 50 == 0 && p.handle != nil && p.erasedOn == nil {
                    try await SummaryEquivalenceTests.expectSummaryMatchesHistory(
                        store, p.handle!, clinic: Self.clinic, service: service, context: "day \(day) subject \(p.index)")
                    summariesChecked += 1
                }
            }
            day = day.adding(days: 1)
        }

        #expect(summariesChecked > 1000, "only \(summariesChecked) summaries compared with their history")
        // Exactly the expected subjects remain.
        let survivors = people.filter { $0.erasedOn == nil }
        #expect(try await store.subjectCount() == survivors.count)
        for p in people {
            let found = await Self.exists(store, p.handle!)
            #expect(found == (p.erasedOn == nil), "subject \(p.index): expected \(p.erasedOn == nil ? "kept" : "erased")")
        }
        // Every sampled erased subject's sealed data is gone from every file.
        let sampled = people.filter { !$0.traces.isEmpty && $0.erasedOn != nil }
        #expect(sampled.count > 50)
        let files = tmp.allFiles().filter { $0.contains("registry.sqlite") }.map { tmp.bytes(of: $0) }
        for p in sampled {
            for trace in p.traces {
                #expect(!files.contains { Bytes.contains($0, trace) }, "subject \(p.index) left a trace")
            }
        }
        // The counters add up (statistics consent only).
        let rows = try await store.counters(from: Month("2000-01")!, to: Month("2100-12")!)
        func total(_ metric: String) -> Int { rows.filter { $0.key.metric == metric }.map(\.value).reduce(0, +) }
        let stats = people.filter(\.statistics)
        #expect(total("enrolled") == stats.count)
        #expect(total("completed") == stats.filter { $0.completedOn != nil }.count)
        #expect(total("erased-cap") == stats.filter { $0.erasedCause == "cap" }.count)
        #expect(total("erased-completed") == stats.filter { $0.erasedCause == "completed" }.count)
        #expect(total("erased-inactive") == stats.filter { $0.erasedCause == "inactive" }.count)
        #expect(
            total("enrolled") == total("erased-cap") + total("erased-completed") + total("erased-inactive")
                + stats.filter { $0.erasedOn == nil }.count)
        let checkups = stats.map(\.outcomes.count).reduce(0, +)
        #expect(["remission", "relapse", "missed", "other"].map { total("checkup-\($0)") }.reduce(0, +) == checkups)
        // Something of everything happened.
        #expect(sweptTotal.erasedCap > 0 && sweptTotal.erasedCompleted > 0 && sweptTotal.erasedInactive > 0)
        #expect(try await store.integrityCheck() == "ok")
        try store.close()
    }

    static func exists(_ store: SQLiteRegistryStore, _ handle: CaseHandle) async -> Bool {
        let result: Result<SubjectView, StorageError>
        do { result = .success(try await store.subject(case: handle, clinic: clinic)) } catch { result = .failure(error) }
        if case .failure(let error) = result {
            #expect(error == .caseNotFound)
            return false
        }
        return true
    }

    /// Runs `work` for each index with up to 64 at once (the store group-commits them), then
    /// applies the results in order on this task.
    static func parallel<Input: Sendable, T: Sendable>(
        _ inputs: [(Int, Input)], _ work: @escaping @Sendable (Input) async throws -> T, apply: (Int, T) -> Void
    ) async throws {
        var start = 0
        while start < inputs.count {
            let chunk = Array(inputs[start..<min(start + 64, inputs.count)])
            let results = try await withThrowingTaskGroup(of: (Int, T).self) { group in
                for (i, input) in chunk { group.addTask { (i, try await work(input)) } }
                var out: [(Int, T)] = []
                for try await r in group { out.append(r) }
                return out
            }
            for (i, r) in results.sorted(by: { $0.0 < $1.0 }) { apply(i, r) }
            start += 64
        }
        _ = T.self
    }
}
