import Foundation
import RegistryProtocol

/// The plaintexts the domain seals through the storage seam. Encoded as JSON with sorted keys;
/// `schemaVersion` in the sealed record's associated data says which shape it is.
enum RecordCodec {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()
    static let decoder = JSONDecoder()

    static func encode<T: Encodable>(_ value: T) throws(DomainError) -> [UInt8] {
        do { return Array(try encoder.encode(value)) } catch { throw .internalFailure("could not encode a record") }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) throws(DomainError) -> T {
        do { return try decoder.decode(T.self, from: Data(bytes)) } catch { throw .internalFailure("a sealed record has an unknown shape") }
    }
}

/// Sealed kind `consent`.
struct ConsentRecord: Codable, Sendable, Equatable {
    var form: String
    var givenOn: Day
    var method: ConsentMethod
    var scope: [ConsentScope]
    var recordedBy: String

    var allowsStatistics: Bool { scope.contains(.statistics) }
    var wire: ConsentWire { ConsentWire(form: form, givenOn: givenOn, method: method, scope: scope) }
}

/// Sealed kind `episode`: the monitoring episode and the policy in force at enrolment.
struct EpisodeRecord: Codable, Sendable, Equatable {
    var category: String
    var enrolledOn: Day
    var clinic: String
    var policy: Policy
}

/// Sealed kind `checkup`, with the policy in force when it was recorded: a policy change
/// reaches an open episode at its next check-up.
struct CheckupRecord: Codable, Sendable, Equatable {
    var on: Day
    var outcome: CheckupOutcome
    var substances: [String]
    var treatment: [String]
    var note: String
    var correction: Bool
    var relapseAction: RelapseAction?
    var clinic: String
    var recordedOn: Day
    var policy: Policy

    var wire: CheckupWire {
        CheckupWire(
            on: on, outcome: outcome, substances: substances, treatment: treatment, note: note,
            correction: correction, relapseAction: relapseAction, clinic: clinic)
    }
}

/// Sealed kind `link`: a clinic linked the subject by its code.
struct LinkRecord: Codable, Sendable, Equatable {
    var clinic: String
    var on: Day
}

/// The opened, decoded records of one subject.
struct SubjectRecords: Sendable {
    var consent: ConsentRecord
    var episode: EpisodeRecord
    /// In the order they were recorded.
    var checkups: [CheckupRecord]
    var links: [LinkRecord]

    init(_ view: SubjectView) throws(DomainError) {
        var consent: ConsentRecord? = nil
        var episode: EpisodeRecord? = nil
        var checkups: [CheckupRecord] = []
        var links: [LinkRecord] = []
        for record in view.records {
            switch record.kind {
            case .consent: consent = try RecordCodec.decode(ConsentRecord.self, record.plaintext)
            case .episode: episode = try RecordCodec.decode(EpisodeRecord.self, record.plaintext)
            case .checkup: checkups.append(try RecordCodec.decode(CheckupRecord.self, record.plaintext))
            case .link: links.append(try RecordCodec.decode(LinkRecord.self, record.plaintext))
            }
        }
        guard let consent, let episode else { throw .internalFailure("a subject has no consent or episode record") }
        self.consent = consent
        self.episode = episode
        self.checkups = checkups
        self.links = links
    }
}
