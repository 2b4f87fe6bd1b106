import Foundation
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import RegistryStore

/// Audit entries as JSON lines (export) and as plain words (a patient's own access log).
enum AuditExport {
    struct Line: Encodable {
        var seq: Int64
        var at: String
        var actor: String
        var action: String
        var result: String
        var subjectCommit: String?
        var prevHash: String
        var hash: String
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func line(_ entry: AuditChain.Entry) throws -> String {
        let line = Line(seq: entry.seq, at: entry.at, actor: entry.actor, action: entry.action, result: entry.result,
                        subjectCommit: entry.subjectCommit.map { Hex.encode($0) }, prevHash: Hex.encode(entry.prevHash), hash: Hex.encode(entry.hash))
        return String(decoding: try encoder.encode(line), as: UTF8.self)
    }

    /// "2026-11-22 10:03 UTC: clinic north recorded a check-up."
    static func accessLogEntry(_ record: AuditRecord) -> AccessLogEntry {
        let what: String = switch record.action {
        case "enrol": "enrolled you (with your consent)"
        case "link": "linked your record to its clinic with your code"
        case "read-status": "looked at your monitoring status"
        case "add-checkup": "recorded a check-up"
        case "read-checkups": "read your check-ups"
        case "reissue-code": "issued you a new code (the old one stopped working)"
        case "self-access": "showed you this record"
        case "sweep-review": "reviewed your record for automatic forgetting"
        default: "did \(record.action)"
        }
        let refused = record.result == "ok" ? "" : " (refused: \(record.result))"
        let when = record.at.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
        return AccessLogEntry(at: record.at, actor: record.actor, action: record.action,
                              text: "\(when): \(record.actor) \(what)\(refused).")
    }
}
