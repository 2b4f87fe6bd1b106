import Foundation
import RegistryProtocol

/// The sealed monitoring summary of one subject (docs/CRYPTO.md §Monitoring summary): what a
/// status read, the due list and the check-up rules need, so that they cost the same whatever
/// the length of the history. It is a function of the subject's records alone, kept current in
/// the same transaction as every change, and sealed under the subject's DEK bound to the record
/// count and chain head it was computed from. The full history is opened only to list
/// check-ups, for the patient's own view, for a correction or a policy change, and by the
/// sweeper.
///
/// Encoded as JSON with sorted keys, like the records. `version` says which shape it is: a
/// summary of another version is treated as absent (the history is folded instead, and the next
/// change writes a current one). **Bump `currentVersion` whenever the fields or the fold
/// (`RemissionFold`, `MonitoringState`) change**: a stored summary of the old rules would
/// otherwise disagree with its history wherever that is open (`agrees`), and be refused as an
/// integrity failure. `MonitoringSummaryFormatTests` pins the current shape.
struct MonitoringSummary: Codable, Sendable, Equatable {
    static let currentVersion = 1

    var version = MonitoringSummary.currentVersion
    var category: String
    var enrolledOn: Day
    /// The clinic that enrolled the subject (the sweeper's counters name it).
    var enrolmentClinic: String
    /// Whether the consent covers statistics (check-up counters).
    var allowsStatistics: Bool
    /// The policy in force: that of the latest check-up, or of the episode.
    var policy: Policy
    var lastCheckup: Day?
    var remissionSince: Day?
    /// Days a relapse added to the required remission (`extend`).
    var extraRemissionDays: Int
    var completedOn: Day?

    /// The summary the records compute: the reference every stored summary must equal.
    init(records: SubjectRecords) {
        self = MonitoringState(episode: records.episode, checkups: records.checkups)
            .summary(allowsStatistics: records.consent.allowsStatistics, enrolmentClinic: records.episode.clinic)
    }

    init(
        category: String, enrolledOn: Day, enrolmentClinic: String, allowsStatistics: Bool, policy: Policy, lastCheckup: Day?,
        remissionSince: Day?, extraRemissionDays: Int, completedOn: Day?
    ) {
        self.category = category
        self.enrolledOn = enrolledOn
        self.enrolmentClinic = enrolmentClinic
        self.allowsStatistics = allowsStatistics
        self.policy = policy
        self.lastCheckup = lastCheckup
        self.remissionSince = remissionSince
        self.extraRemissionDays = extraRemissionDays
        self.completedOn = completedOn
    }

    /// The summary a view carries, or nil when it carries none or one of another version.
    static func opened(from view: SubjectView) -> MonitoringSummary? {
        guard let plaintext = view.summary,
            let summary = try? RecordCodec.decoder.decode(MonitoringSummary.self, from: Data(plaintext)),
            summary.version == currentVersion
        else { return nil }
        return summary
    }

    /// The sealed plaintext: the JSON padded with spaces to a multiple of `paddedBytes`. The
    /// encoder leaves out a nil date, so unpadded the ciphertext's length would tell a reader
    /// without keys whether the remission clock runs or monitoring completed; padded, it is the
    /// same for every summary of a deployment (trailing whitespace is valid JSON).
    func encoded() throws(DomainError) -> [UInt8] {
        var bytes = try RecordCodec.encode(self)
        bytes += [UInt8](repeating: 0x20, count: (Self.paddedBytes - bytes.count % Self.paddedBytes) % Self.paddedBytes)
        return bytes
    }

    static let paddedBytes = 512

    /// Whether `view`'s stored summary is the one its history computes. Checked wherever the
    /// history is open anyway (the check-ups list, the patient's view, corrections): a summary
    /// that opens but disagrees was put beside a history it was not computed from (a restored
    /// or rolled-back timeline), and nothing may be decided from it (docs/CRYPTO.md §Monitoring
    /// summary). A view with no summary, or one of another version, has nothing to disagree.
    static func agrees(_ view: SubjectView, with records: SubjectRecords) -> Bool {
        guard let stored = opened(from: view) else { return true }
        return stored == MonitoringSummary(records: records)
    }
}
