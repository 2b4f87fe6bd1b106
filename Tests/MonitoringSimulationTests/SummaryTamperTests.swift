import AnonregTestSupport
import Foundation
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryCore
@testable import RegistryStore

/// A database writer without keys attacks the sealed monitoring summary, the one thing a status
/// read and a check-up now decide from (docs/CRYPTO.md §Monitoring summary). Each change is
/// detected like a tampered record: the read and the check-up are refused as integrity
/// errors, and nothing else is served in their place. Clearing the summary only sends the
/// daemon back to the history, which answers the same, and the backfill seals a new one.
struct SummaryTamperTests {
    static let clinic = ThreeYearSimulationTests.clinic

    struct Registry {
        let tmp = TemporaryDirectory()
        let store: SQLiteRegistryStore
        let clock = FixedDayClock(Day("2026-01-01")!)
        let service: MonitoringService
        var cases: [CaseHandle] = []
        var codes: [String] = []

        init() async throws {
            let keyring = try Keyring.create(in: tmp.sub("keys"))
            store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
            service = MonitoringService(storage: store, rules: ThreeYearSimulationTests.rules, clock: clock)
            for _ in 0..<2 {
                let body =
                    "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-01-01\",\"method\":\"written\",\"scope\":[\"monitoring\",\"statistics\"]},\"category\":\"sim\",\"enrolledOn\":\"2026-01-01\"}"
                let reply = try await service.enrol(
                    clinic: SummaryTamperTests.clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
                cases.append(CaseHandle(reply.case)!)
                codes.append(reply.code)
            }
        }

        func checkup(_ on: String, _ outcome: CheckupOutcome, case index: Int = 0) async throws {
            clock.set(Day(on)!)
            let request = try JSONDecoder().decode(
                CheckupRequest.self, from: Data("{\"on\":\"\(on)\",\"outcome\":\"\(outcome.rawValue)\"}".utf8))
            _ = try await service.addCheckup(clinic: SummaryTamperTests.clinic, case: cases[index], request)
        }

        @discardableResult
        func sqlite(_ sql: String) throws -> String {
            let result = try Binaries.runExecutable("/usr/bin/sqlite3", [tmp.sub("registry.sqlite"), sql])
            #expect(result.status == 0, "sqlite3: \(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func summaryHex(subject id: Int) throws -> String { try sqlite("SELECT hex(summary) FROM subject WHERE id = \(id)") }

        /// A status read and a check-up on case `index` are both refused as integrity errors.
        func expectRefused(case index: Int = 0, _ attack: String) async throws {
            do {
                let answer = try await service.status(clinic: SummaryTamperTests.clinic, case: cases[index])
                Issue.record("\(attack): the status was served: \(answer.monitoring.status)")
            } catch {
                #expect(error.code == DomainError.integrityErrorCode, "\(attack): \(error)")
            }
            do {
                try await checkup(clock.today.adding(days: 1).description, .remission, case: index)
                Issue.record("\(attack): a check-up was recorded on a tampered summary")
            } catch let error as DomainError {
                #expect(error.code == DomainError.integrityErrorCode, "\(attack): \(error)")
            }
        }
    }

    @Test func aChangedByteIsRefused() async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .remission)
        var hex = Array(try r.summaryHex(subject: 1))
        // The last byte of the tag.
        hex[hex.count - 1] = hex[hex.count - 1] == "0" ? "1" : "0"
        try r.sqlite("UPDATE subject SET summary = X'\(String(hex))' WHERE id = 1")
        try await r.expectRefused("a changed byte")
    }

    /// An older summary put back beside a longer history: it authenticates under the same key
    /// and the same subject, and would say the later check-up never happened.
    @Test func anOlderSummaryPutBackIsRefused() async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .remission)
        let older = try r.summaryHex(subject: 1)
        try await r.checkup("2026-03-01", .relapse)
        try r.sqlite("UPDATE subject SET summary = X'\(older)' WHERE id = 1")
        try await r.expectRefused("an older summary put back")
    }

    /// Another subject's summary, of a history as long as this one's: it would move one
    /// person's status onto another.
    @Test func anotherSubjectsSummaryIsRefused() async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .remission, case: 0)
        try await r.checkup("2026-02-01", .relapse, case: 1)
        let other = try r.summaryHex(subject: 2)
        try r.sqlite("UPDATE subject SET summary = X'\(other)' WHERE id = 1")
        try await r.expectRefused("another subject's summary")
    }

    /// A record row deleted behind anonreg's back (the newest, or one in the middle): the
    /// summary still opens under the row's key, but the record rows are no longer the ones the
    /// row names, so neither a status read nor a check-up is served from it. Without the check,
    /// the check-up was acknowledged (201) and the next full check erased the subject with it.
    @Test(arguments: ["the newest", "a middle one"])
    func aDeletedRecordRowRefusesStatusAndCheckup(_ which: String) async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .remission)
        try await r.checkup("2026-03-01", .remission)
        // The subject's records: consent, episode, then the two check-ups.
        let offset = which == "the newest" ? 3 : 2
        try r.sqlite("DELETE FROM record WHERE id = (SELECT id FROM record WHERE subject_id = 1 ORDER BY id LIMIT 1 OFFSET \(offset))")
        try await r.expectRefused("\(which) record row deleted")
        #expect(try r.sqlite("SELECT count(*) FROM record WHERE subject_id = 1") == "3", "a check-up was stored")
    }

    /// A summary that opens but is not what the history computes: sealed validly, for this
    /// subject's current history, by a timeline that is not this one (a restore, a rollback of
    /// the row, here the backfill's own entry point). Status reads cannot tell from the summary
    /// alone, but every read of the history can, and refuses: the check-ups list, the
    /// patient's own view, and a correction (which decides from the history).
    @Test func aSummaryThatDisagreesWithTheHistoryIsRefusedWhereTheHistoryIsOpen() async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .relapse)
        try r.sqlite("UPDATE subject SET summary = NULL WHERE id = 1")
        let opened = try #require(try await r.store.openForSummary(SubjectReference(rawValue: 1)))
        var wrong = MonitoringSummary(records: try SubjectRecords(opened.view))
        wrong.completedOn = Day("2026-02-01")!
        #expect(
            try await r.store.storeSummaries([
                SummaryUpdate(subject: SubjectReference(rawValue: 1), summary: try wrong.encoded(), stamp: opened.stamp)
            ]) == 1)
        do {
            _ = try await r.service.checkups(clinic: Self.clinic, case: r.cases[0])
            Issue.record("the check-ups were served beside a disagreeing summary")
        } catch { #expect(error.code == DomainError.integrityErrorCode, "\(error)") }
        do {
            _ = try await r.service.selfAccess(code: r.codes[0])
            Issue.record("the patient's view was served beside a disagreeing summary")
        } catch { #expect(error.code == DomainError.integrityErrorCode, "\(error)") }
        let correction = try JSONDecoder().decode(
            CheckupRequest.self, from: Data("{\"on\":\"2026-02-01\",\"outcome\":\"remission\",\"correction\":true}".utf8))
        do {
            _ = try await r.service.addCheckup(clinic: Self.clinic, case: r.cases[0], correction)
            Issue.record("a correction was decided beside a disagreeing summary")
        } catch { #expect(error.code == DomainError.integrityErrorCode, "\(error)") }
        // A withdrawal decides nothing from the summary: it keeps its statistics counter and
        // raises no "records failed" alarm.
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic sim-clinic", action: "withdraw"))
        try await AuditRecorder.$current.withValue(recorder) {
            _ = try await r.service.withdraw(clinic: Self.clinic, case: r.cases[0])
        }
        #expect(recorder.event(result: "ok")?.result.contains("without its statistics counter") == false)
        let withdrawn = try await r.store.counters(from: Month("2026-01")!, to: Month("2026-12")!).filter { $0.key.metric == "withdrawn" }
        #expect(withdrawn.map(\.value).reduce(0, +) == 1)
    }

    /// The backfill stores a summary only for the history it was computed from: a link (which
    /// appends a record and reseals no summary: only the stamp guard stops it) or a check-up
    /// (which writes its own summary: stopped by the guard that the row still has none)
    /// committed between its open and its store wins, and no stale summary is sealed under the
    /// new history.
    @Test(arguments: ["a link", "a check-up"])
    func theBackfillNeverStoresAStaleSummary(_ race: String) async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .remission)
        // The code is never stored: link with a reissued one, drawn before the open.
        let code = try await r.service.reissueCode(clinic: Self.clinic, case: r.cases[0]).code
        try r.sqlite("UPDATE subject SET summary = NULL WHERE id = 1")
        let opened = try #require(try await r.store.openForSummary(SubjectReference(rawValue: 1)))
        let update = SummaryUpdate(
            subject: SubjectReference(rawValue: 1), summary: try MonitoringSummary(records: try SubjectRecords(opened.view)).encoded(),
            stamp: opened.stamp)
        if race == "a link" {
            _ = try await r.service.link(clinic: ClinicID("sum-other")!, code: code)
        } else {
            try await r.checkup("2026-03-01", .relapse)
        }
        #expect(try await r.store.storeSummaries([update]) == 0, "\(race): a stale summary was stored")
        _ = try await SummaryBackfill(storage: r.store).run()
        try await SummaryEquivalenceTests.expectSummaryMatchesHistory(
            r.store, r.cases[0], clinic: Self.clinic, service: r.service, context: race)
    }

    /// A disk thief without keys reads the sealed summaries' lengths: they must not tell a
    /// subject in remission (a start date in the plaintext) from one who relapsed (none), nor a
    /// completed one.
    @Test func theSealedLengthTellsNothing() async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .remission, case: 0)
        try await r.checkup("2026-02-01", .relapse, case: 1)
        #expect(try r.sqlite("SELECT count(DISTINCT length(summary)) FROM subject") == "1")
    }

    /// A cleared summary is no attack on what is answered: the history answers the same, and
    /// the backfill seals a summary again.
    @Test func aClearedSummaryFallsBackToTheHistoryAndIsRebuilt() async throws {
        let r = try await Registry()
        try await r.checkup("2026-02-01", .remission)
        let before = try await r.service.status(clinic: Self.clinic, case: r.cases[0])
        try r.sqlite("UPDATE subject SET summary = NULL")
        #expect(try await r.service.status(clinic: Self.clinic, case: r.cases[0]) == before)
        let report = try await SummaryBackfill(storage: r.store).run()
        #expect(report.built == 2 && report.failed == 0)
        #expect(try r.sqlite("SELECT count(*) FROM subject WHERE summary IS NULL") == "0")
        #expect(try await r.service.status(clinic: Self.clinic, case: r.cases[0]) == before)
        for handle in r.cases {
            try await SummaryEquivalenceTests.expectSummaryMatchesHistory(
                r.store, handle, clinic: Self.clinic, service: r.service, context: "rebuilt")
        }
    }
}
