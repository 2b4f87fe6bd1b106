import Foundation
import RegistryProtocol
import Testing

@testable import RegistryCore

/// The sealed monitoring summary's plaintext (docs/CRYPTO.md §Monitoring summary).
struct MonitoringSummaryFormatTests {
    static func checkup(_ on: String, _ outcome: CheckupOutcome, policy: Policy, action: RelapseAction? = nil) -> CheckupRecord {
        CheckupRecord(
            on: Day(on)!, outcome: outcome, substances: [], treatment: [], note: "", correction: false, relapseAction: action,
            clinic: "a", recordedOn: Day(on)!, policy: policy)
    }

    /// The shape and the fold are pinned: a change to either must bump
    /// `MonitoringSummary.currentVersion` (and this test), or every stored summary of the old
    /// rules would disagree with its history and be refused as an integrity failure.
    @Test func theCurrentVersionsShapeIsPinned() throws {
        let policy = Policy.dependence
        let episode = EpisodeRecord(category: "dependence", enrolledOn: Day("2026-01-01")!, clinic: "a", policy: policy)
        let state = MonitoringState(
            episode: episode,
            checkups: [
                Self.checkup("2026-02-01", .remission, policy: policy), Self.checkup("2026-03-01", .relapse, policy: policy),
                Self.checkup("2026-04-01", .remission, policy: policy),
            ])
        let bytes = try state.summary(allowsStatistics: true, enrolmentClinic: "a").encoded()
        #expect(bytes.count == MonitoringSummary.paddedBytes)
        let json = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        #expect(MonitoringSummary.currentVersion == 1)
        #expect(
            json
                == #"{"allowsStatistics":true,"category":"dependence","enrolledOn":"2026-01-01","enrolmentClinic":"a","extraRemissionDays":0,"lastCheckup":"2026-04-01","policy":{"capDays":1825,"checkupIntervalDays":90,"overdueAfterDays":30,"relapse":"restart","relapseExtendDays":180,"remissionDays":1095},"remissionSince":"2026-04-01","version":1}"#,
            "\(json)")
    }

    /// The largest summary a configuration can produce still fits the padding, so every
    /// summary of a deployment seals to the same length whatever its state.
    @Test func theLargestSummaryFitsThePadding() throws {
        let long = String(repeating: "c", count: 64)
        let policy = Policy(
            checkupIntervalDays: 9_999_999, remissionDays: 9_999_999, relapse: .clinician, relapseExtendDays: 9_999_999,
            capDays: 99_999_999, overdueAfterDays: 9_999_999)
        let summary = MonitoringSummary(
            category: long, enrolledOn: Day("2026-01-01")!, enrolmentClinic: long, allowsStatistics: false, policy: policy,
            lastCheckup: Day("2026-12-31")!, remissionSince: Day("2026-12-31")!, extraRemissionDays: 999_999_999_999,
            completedOn: Day("2026-12-31")!)
        let plain = try RecordCodec.encode(summary)
        #expect(plain.count <= MonitoringSummary.paddedBytes, "\(plain.count) bytes")
        #expect(try summary.encoded().count == MonitoringSummary.paddedBytes)
    }
}
