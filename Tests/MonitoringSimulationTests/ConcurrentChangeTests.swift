import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import Synchronization
import Testing

@testable import RegistryStore

/// docs/STORAGE.md §Changes: a check-up is opened, decided in plain code and committed only if
/// the case is unchanged. These tests put another writer between the open and the commit, as a
/// second clinic recording on the same subject would.
struct ConcurrentChangeTests {
    static let clinic = ThreeYearSimulationTests.clinic

    /// A check-up that lost the race is decided again on the history that won it: a date that
    /// was fine on the history it first read, but is before the check-up that landed in between,
    /// is refused as the rules say, and nothing of it is stored.
    @Test func aCheckupIsDecidedAgainOnTheHistoryThatWonTheRace() async throws {
        let setup = try await Setup()
        setup.racing.once {
            _ = try await setup.other.addCheckup(clinic: Self.clinic, case: setup.handle, try Setup.checkup(on: "2026-03-01"))
        }
        let refusal = DomainError(
            .unprocessable, "invalid_date",
            "the check-up date is before the last check-up (2026-03-01); send \"correction\": true to correct history")
        await #expect(throws: refusal) {
            _ = try await setup.service.addCheckup(
                clinic: Self.clinic, case: setup.handle, try Setup.checkup(on: "2026-02-01", note: "late"))
        }
        #expect(setup.racing.opens == 2, "opened, lost the race, opened again and refused")
        #expect(try await setup.notes() == ["first", ""], "the winner's check-up, and nothing of the refused one")
    }

    /// A case changed before every commit gets `409 concurrent_change` after the bounded number
    /// of attempts, and none of the attempts stored anything.
    @Test func aCaseChangedOnEveryAttemptIsAnswered409AndNothingIsStored() async throws {
        let setup = try await Setup()
        setup.racing.beforeCommit = {
            _ = try await setup.other.addCheckup(
                clinic: Self.clinic, case: setup.handle, try Setup.checkup(on: "2026-03-01", correction: true, note: "first"))
        }
        await #expect(throws: DomainError.concurrentChange) {
            _ = try await setup.service.addCheckup(
                clinic: Self.clinic, case: setup.handle, try Setup.checkup(on: "2026-04-01", note: "mine"))
        }
        #expect(setup.racing.opens == MonitoringService.changeAttempts)
        let notes = try await setup.notes()
        #expect(!notes.contains("mine"))
        #expect(notes.count == 1 + MonitoringService.changeAttempts)
        #expect(DomainError.concurrentChange.kind == .conflict)
    }

    /// One lost race is retried and the check-up is stored once, after the one that won.
    @Test func aCheckupThatLostOneRaceIsStoredOnceAfterTheWinner() async throws {
        let setup = try await Setup()
        setup.racing.once {
            _ = try await setup.other.addCheckup(
                clinic: Self.clinic, case: setup.handle, try Setup.checkup(on: "2026-03-01", note: "winner"))
        }
        let answer = try await setup.service.addCheckup(
            clinic: Self.clinic, case: setup.handle, try Setup.checkup(on: "2026-04-01", note: "mine"))
        #expect(answer.monitoring.lastCheckup == Day("2026-04-01"))
        #expect(try await setup.notes() == ["first", "winner", "mine"])
    }

    /// A store, a case with one check-up, the service under test over a storage that lets a
    /// second writer in before each commit, and that second writer.
    struct Setup {
        let tmp = TemporaryDirectory()
        let store: SQLiteRegistryStore
        let racing: RacingStorage
        let service: MonitoringService
        let other: MonitoringService
        let handle: CaseHandle

        init() async throws {
            store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: try Keyring.create(in: tmp.sub("keys")))
            racing = RacingStorage(store)
            let clock = FixedDayClock(Day("2026-06-01")!)
            service = MonitoringService(storage: racing, rules: ThreeYearSimulationTests.rules, clock: clock)
            other = MonitoringService(storage: store, rules: ThreeYearSimulationTests.rules, clock: clock)
            let body =
                "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-01-01\",\"method\":\"written\",\"scope\":[\"monitoring\"]},\"category\":\"sim\",\"enrolledOn\":\"2026-01-01\"}"
            let enrolled = try await other.enrol(
                clinic: ConcurrentChangeTests.clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
            handle = try #require(CaseHandle(enrolled.case))
            _ = try await other.addCheckup(
                clinic: ConcurrentChangeTests.clinic, case: handle, try Self.checkup(on: "2026-01-15", note: "first"))
        }

        static func checkup(on day: String, correction: Bool = false, note: String = "") throws -> CheckupRequest {
            try JSONDecoder().decode(
                CheckupRequest.self,
                from: Data("{\"on\":\"\(day)\",\"outcome\":\"remission\",\"correction\":\(correction),\"note\":\"\(note)\"}".utf8))
        }

        /// The notes of the case's check-ups, in the order they were stored.
        func notes() async throws -> [String] {
            try await other.checkups(clinic: ConcurrentChangeTests.clinic, case: handle).checkups.map(\.note)
        }
    }
}

/// The real store, with a hook that runs before each commit (another writer's turn) and a count
/// of the opens for a change.
final class RacingStorage: RegistryStorage, @unchecked Sendable {
    // @unchecked: the hook is set once, before the service under test runs.
    let inner: SQLiteRegistryStore
    var beforeCommit: @Sendable () async throws -> Void = {}
    private let openCount = Mutex(0)
    private let historyOpenCount = Mutex(0)
    var opens: Int { openCount.withLock { $0 } }
    /// Opens for a change that opened the whole history rather than the summary.
    var historyOpens: Int { historyOpenCount.withLock { $0 } }

    init(_ inner: SQLiteRegistryStore) { self.inner = inner }

    /// Lets `writer` in before the first commit only.
    func once(_ writer: @escaping @Sendable () async throws -> Void) {
        let done = Mutex(false)
        beforeCommit = {
            guard
                done.withLock({ was in
                    defer { was = true }
                    return !was
                })
            else { return }
            try await writer()
        }
    }

    func openForChange(case handle: CaseHandle, clinic: ClinicID, history: Bool) async throws(StorageError) -> OpenedSubject {
        openCount.withLock { $0 += 1 }
        if history { historyOpenCount.withLock { $0 += 1 } }
        return try await inner.openForChange(case: handle, clinic: clinic, history: history)
    }
    func summary(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView {
        try await inner.summary(case: handle, clinic: clinic)
    }
    func subjectsWithoutSummary(after: SubjectReference?, limit: Int) async throws(StorageError) -> [SubjectReference] {
        try await inner.subjectsWithoutSummary(after: after, limit: limit)
    }
    func openForSummary(_ subject: SubjectReference) async throws(StorageError) -> OpenedSubject? {
        try await inner.openForSummary(subject)
    }
    func storeSummaries(_ updates: [SummaryUpdate]) async throws(StorageError) -> Int { try await inner.storeSummaries(updates) }

    func commit(_ change: SubjectChange, case handle: CaseHandle, clinic: ClinicID, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError)
    {
        do { try await beforeCommit() } catch { throw .database(reason: "the racing writer failed: \(error)") }
        try await inner.commit(change, case: handle, clinic: clinic, ifUnchanged: stamp)
    }

    func enrol(_ enrolment: Enrolment) async throws(StorageError) -> EnrolmentReceipt { try await inner.enrol(enrolment) }
    func subject(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> SubjectView {
        try await inner.subject(case: handle, clinic: clinic)
    }
    func link(code: String, clinic: ClinicID, record: NewRecord, counters: [CounterIncrement]) async throws(StorageError) -> CaseHandle {
        try await inner.link(code: code, clinic: clinic, record: record, counters: counters)
    }
    func subject(code: String) async throws(StorageError) -> SubjectView { try await inner.subject(code: code) }
    func reissueCode(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> String {
        try await inner.reissueCode(case: handle, clinic: clinic)
    }
    func erase(case handle: CaseHandle, clinic: ClinicID, counters: [CounterIncrement]) async throws(StorageError) {
        try await inner.erase(case: handle, clinic: clinic, counters: counters)
    }
    func erase(code: String, counters: [CounterIncrement]) async throws(StorageError) {
        try await inner.erase(code: code, counters: counters)
    }
    func casesDue(clinic: ClinicID, before day: Day) async throws(StorageError) -> [DueCase] {
        try await inner.casesDue(clinic: clinic, before: day)
    }
    func count(_ counters: [CounterIncrement]) async throws(StorageError) { try await inner.count(counters) }
    func subjectsToReview(onOrBefore day: Day, limit: Int) async throws(StorageError) -> [SubjectReference] {
        try await inner.subjectsToReview(onOrBefore: day, limit: limit)
    }
    func openForReview(_ subject: SubjectReference) async throws(StorageError) -> ReviewOpening {
        try await inner.openForReview(subject)
    }
    func commitReview(_ subject: SubjectReference, _ decision: SweepDecision, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError) -> SweepResult
    {
        try await inner.commitReview(subject, decision, ifUnchanged: stamp)
    }
    func checkIntegrity(actor: String) async throws(StorageError) -> IntegrityReport { try await inner.checkIntegrity(actor: actor) }
}
