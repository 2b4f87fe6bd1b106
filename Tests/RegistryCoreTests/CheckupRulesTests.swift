import Foundation
import RegistryProtocol
import Testing

@testable import RegistryCore

/// Validation of check-ups and consent (no storage needed: `decideCheckup` is pure).
struct CheckupRulesTests {
    static let rules = MonitoringRules.defaults
    static let clinic = ClinicID("a")!

    static func view(checkups: [CheckupRecord] = [], statistics: Bool = true) throws -> SubjectView {
        let consent = ConsentRecord(
            form: "F", givenOn: Day("2026-01-01")!, method: .written,
            scope: statistics ? [.monitoring, .statistics] : [.monitoring], recordedBy: "a")
        let episode = EpisodeRecord(category: "dependence", enrolledOn: Day("2026-01-01")!, clinic: "a", policy: .dependence)
        var records = [
            StoredRecord(id: 1, kind: .consent, schemaVersion: 1, plaintext: try RecordCodec.encode(consent)),
            StoredRecord(id: 2, kind: .episode, schemaVersion: 1, plaintext: try RecordCodec.encode(episode)),
        ]
        for (i, c) in checkups.enumerated() {
            records.append(StoredRecord(id: Int64(3 + i), kind: .checkup, schemaVersion: 1, plaintext: try RecordCodec.encode(c)))
        }
        return SubjectView(
            records: records, columns: SubjectColumns(status: .active, nextDue: nil, reviewOn: nil), clinics: [clinic], auditReference: [])
    }

    static func request(_ json: String) throws -> CheckupRequest {
        try JSONDecoder().decode(CheckupRequest.self, from: Data(json.utf8))
    }

    func decide(_ json: String, checkups: [CheckupRecord] = [], today: String = "2026-06-01", statistics: Bool = true) throws -> (
        SubjectChange, CheckupRecord, MonitoringState
    ) {
        try #require(
            try MonitoringService.decideCheckup(
                view: try Self.view(checkups: checkups, statistics: statistics), request: try Self.request(json),
                clinic: Self.clinic, today: Day(today)!, rules: Self.rules))
    }

    func refusal(_ body: () throws -> Any) -> String? {
        do {
            _ = try body()
            return nil
        } catch let error as DomainError { return error.code } catch { return "other" }
    }

    @Test func datesAreValidated() throws {
        #expect(refusal { try decide("{\"on\":\"2026-06-02\",\"outcome\":\"remission\"}") } == "invalid_date")
        #expect(refusal { try decide("{\"on\":\"2025-12-31\",\"outcome\":\"remission\"}") } == "invalid_date")
        let earlier = MonitoringStateTests.checkup("2026-04-01", .remission)
        #expect(refusal { try decide("{\"on\":\"2026-03-01\",\"outcome\":\"remission\"}", checkups: [earlier]) } == "invalid_date")
        // As a correction it is accepted and kept as history.
        let (change, record, _) = try decide("{\"on\":\"2026-03-01\",\"outcome\":\"remission\",\"correction\":true}", checkups: [earlier])
        #expect(record.correction)
        #expect(change.append.count == 1)
    }

    @Test func countersFollowTheStatisticsConsent() throws {
        let (with, _, _) = try decide("{\"on\":\"2026-03-01\",\"outcome\":\"relapse\"}")
        #expect(with.counters.map(\.key.metric) == ["checkup-relapse"])
        let (without, _, _) = try decide("{\"on\":\"2026-03-01\",\"outcome\":\"relapse\"}", statistics: false)
        #expect(without.counters.isEmpty)
    }

    @Test func completionIsCountedOnce() throws {
        let start = MonitoringStateTests.checkup("2026-01-15", .remission, policy: .dependence)
        let (change, _, state) = try decide("{\"on\":\"2029-01-14\",\"outcome\":\"remission\"}", checkups: [start], today: "2029-02-01")
        #expect(state.isCompleted)
        #expect(change.counters.map(\.key.metric) == ["checkup-remission", "completed"])
        #expect(change.columns.status == .completed)
    }

    @Test func relapseActionOnlyForRelapses() {
        #expect(
            refusal { try decide("{\"on\":\"2026-03-01\",\"outcome\":\"remission\",\"relapseAction\":\"extend\"}") }
                == "invalid_relapse_action")
        // dependence restarts on relapse: a clinician action is refused, not silently dropped.
        #expect(
            refusal { try decide("{\"on\":\"2026-03-01\",\"outcome\":\"relapse\",\"relapseAction\":\"extend\"}") }
                == "invalid_relapse_action")
    }
}
