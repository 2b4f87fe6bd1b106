import Foundation
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import RegistryText

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
        let line = CheckpointLine(
            seq: checkpoint.seq, hash: Hex.encode(checkpoint.hash), at: checkpoint.at, format: checkpoint.format,
            previous: checkpoint.previous, interval: checkpoint.interval, signature: Hex.encode(checkpoint.signature))
        return String(decoding: try encoder.encode(line), as: UTF8.self)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func line(_ entry: AuditChain.Entry) throws -> String {
        let line = Line(
            seq: entry.seq, at: entry.at, actor: entry.actor, action: entry.action, result: entry.result,
            subjectCommit: entry.subjectCommit.map { Hex.encode($0) }, prevHash: Hex.encode(entry.prevHash), hash: Hex.encode(entry.hash))
        return String(decoding: try encoder.encode(line), as: UTF8.self)
    }

    /// "2026-11-22 10:03:11 UTC: clinic north recorded a check-up.", in `language` (the
    /// `access.*` and `actor.*` messages of the catalogues).
    static func accessLogEntry(_ record: AuditRecord, language: Language = .en) -> AccessLogEntry {
        let table = Catalogue.table(language)
        let what =
            table["access.action.\(record.action)"] != nil
            ? Catalogue.text("access.action.\(record.action)", language)
            : Catalogue.text("access.action.other", language, ["action": record.action])
        // `at` is YYYY-MM-DDTHH:MM:SSZ (the form every audit entry is written in); anything else is shown as it is.
        var when = record.at
        let parts = record.at.split(separator: "T")
        if parts.count == 2, let day = Day(parts[0]), parts[1].hasSuffix("Z") {
            when = Catalogue.text("access.when", language, ["date": Catalogue.date(day, language), "time": String(parts[1].dropLast())])
        }
        let key = record.result == "ok" ? "access.line" : "access.lineRefused"
        return AccessLogEntry(
            at: record.at, actor: record.actor, action: record.action,
            text: Catalogue.text(
                key, language,
                [
                    "when": when, "actor": actorName(record.actor, language), "what": what, "result": record.result,
                ]))
    }

    /// The audit log's actor (`clinic north`, `admin uid 0`, `statistician uid 7`,
    /// `system sweeper`) in `language`; any other actor as it is.
    static func actorName(_ actor: String, _ language: Language) -> String {
        for (prefix, key, name) in [
            ("clinic ", "actor.clinic", "name"), ("admin uid ", "actor.admin", "uid"),
            ("statistician uid ", "actor.statistician", "uid"), ("system ", "actor.system", "name"),
        ]
        where actor.hasPrefix(prefix) {
            return Catalogue.text(key, language, [name: String(actor.dropFirst(prefix.count))])
        }
        return actor
    }
}
