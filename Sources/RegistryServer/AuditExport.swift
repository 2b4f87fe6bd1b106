import Foundation
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import RegistryStore

/// Audit entries as JSON lines (export) and as plain words (a patient's own access log).
enum AuditExport {
    struct Line: Encodable {
        var type = "entry"
        var seq: Int64
        var at: String
        var actor: String
        var action: String
        var result: String
        var subjectCommit: String?
        var prevHash: String
        var hash: String
    }

    /// A signed checkpoint as an export line (docs/CRYPTO.md §Audit, "Exports").
    struct CheckpointLine: Encodable {
        var type = "checkpoint"
        var seq: Int64
        var hash: String
        var at: String
        var format: Int
        var previous: Int64?
        var interval: Int?
        var signature: String
    }

    /// Entries in order, each checkpoint right after the entry it signs; a checkpoint before the
    /// first entry (the one a page continues from) comes first.
    static func lines(entries: [AuditChain.Entry], checkpoints: [AuditChain.Checkpoint]) throws -> String {
        var bySeq: [Int64: AuditChain.Checkpoint] = [:]
        for checkpoint in checkpoints { bySeq[checkpoint.seq] = checkpoint }
        var text = ""
        if let first = entries.first, let start = bySeq[first.seq - 1] { text += try line(start) + "\n" }
        for entry in entries {
            text += try line(entry) + "\n"
            if let checkpoint = bySeq[entry.seq] { text += try line(checkpoint) + "\n" }
        }
        return text
    }

    static func line(_ checkpoint: AuditChain.Checkpoint) throws -> String {
        let line = CheckpointLine(seq: checkpoint.seq, hash: Hex.encode(checkpoint.hash), at: checkpoint.at, format: checkpoint.format,
                                  previous: checkpoint.previous, interval: checkpoint.interval, signature: Hex.encode(checkpoint.signature))
        return String(decoding: try encoder.encode(line), as: UTF8.self)
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
