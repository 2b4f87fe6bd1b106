import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryPostgres
import RegistryProtocol
import Testing

/// What a PostgreSQL database administrator (docs/THREAT-MODEL.md), who can change any row but
/// holds no keys, can do to a registry, and what the nodes make of it: every change to what
/// steers a lookup or a decision is refused as an integrity failure, never served. Each attack
/// is made with psql as the cluster's superuser on a registry of two subjects (the first at
/// clinic A, the second at clinic B), against the first.
@Suite(.timeLimit(.minutes(10)))
struct PostgresTamperTests {
    enum Attack: String, CaseIterable, Sendable {
        case flipASealedRecord, deleteTheNewestRecord, deleteAMiddleRecord, clearTheReviewDate, moveTheDueDate,
            redirectTheCaseLink, swapTheCodeIndex, moveAnotherSubjectsSummary, putBackAnOlderSummary
    }

    static let first = "(SELECT min(id) FROM subject)"
    static let second = "(SELECT max(id) FROM subject)"

    /// What each attack must be refused as, on a read of the whole history and on a summary
    /// read (nil: that read does not touch what was changed).
    static func expected(_ attack: Attack) -> (history: StorageError?, summary: StorageError?) {
        let row = StorageError.integrity(what: "subject row")
        let set = StorageError.integrity(what: "record set (a record was deleted, inserted or put back)")
        let summary = StorageError.tampered(what: "monitoring summary")
        return switch attack {
        case .flipASealedRecord: (.tampered(what: "checkup record"), nil)
        case .deleteTheNewestRecord, .deleteAMiddleRecord: (set, set)
        case .clearTheReviewDate, .moveTheDueDate: (row, row)
        case .redirectTheCaseLink: (.integrity(what: "case link row"), .integrity(what: "case link row"))
        case .swapTheCodeIndex: (nil, nil)
        case .moveAnotherSubjectsSummary, .putBackAnOlderSummary: (summary, summary)
        }
    }

    @Test(arguments: Attack.allCases)
    func aDatabaseAdministratorsChangeIsRefused(_ attack: Attack) async throws {
        let nodes = try PostgresNodes()
        let node = try await nodes.node()
        defer { Task { await node.close() } }
        let first = try await PostgresNodes.enrol(node, consent: "first")
        try await PostgresNodes.addCheckup(node, first.caseHandle, clinic: PostgresNodes.clinicA, note: "one")
        let older = try nodes.sql("SELECT encode(summary, 'hex') FROM subject WHERE id = \(Self.first);")
        try await PostgresNodes.addCheckup(node, first.caseHandle, clinic: PostgresNodes.clinicA, note: "two")
        let second = try await PostgresNodes.enrol(node, clinic: PostgresNodes.clinicB, consent: "second")
        try await PostgresNodes.addCheckup(node, second.caseHandle, clinic: PostgresNodes.clinicB, note: "other")

        let newest = "(SELECT max(id) FROM record WHERE subject_id = \(Self.first))"
        let sql =
            switch attack {
            case .flipASealedRecord:
                "UPDATE record SET sealed = set_byte(sealed, 30, get_byte(sealed, 30) # 1) WHERE id = \(newest);"
            case .deleteTheNewestRecord:
                "DELETE FROM record WHERE id = \(newest);"
            case .deleteAMiddleRecord:
                "DELETE FROM record WHERE id = (SELECT min(id) + 1 FROM record WHERE subject_id = \(Self.first));"
            case .clearTheReviewDate:
                "UPDATE subject SET review_on = NULL WHERE id = \(Self.first);"
            case .moveTheDueDate:
                "UPDATE subject SET next_due = '2099-01-01' WHERE id = \(Self.first);"
            case .redirectTheCaseLink:
                "UPDATE case_link SET subject_id = \(Self.second) WHERE subject_id = \(Self.first);"
            case .swapTheCodeIndex:
                """
                CREATE TEMP TABLE old AS SELECT (SELECT code_index FROM subject WHERE id = \(Self.first)) AS a,
                    (SELECT code_index FROM subject WHERE id = \(Self.second)) AS b;
                UPDATE subject SET code_index = decode(repeat('11', 32), 'hex') WHERE id = \(Self.second);
                UPDATE subject SET code_index = (SELECT b FROM old) WHERE id = \(Self.first);
                UPDATE subject SET code_index = (SELECT a FROM old) WHERE id = \(Self.second);
                """
            case .moveAnotherSubjectsSummary:
                "UPDATE subject SET summary = (SELECT summary FROM subject WHERE id = \(Self.second)) WHERE id = \(Self.first);"
            case .putBackAnOlderSummary:
                "UPDATE subject SET summary = decode('\(older)', 'hex') WHERE id = \(Self.first);"
            }
        try nodes.sql(sql)

        let (history, summary) = Self.expected(attack)
        if let history {
            await #expect(throws: history) { try await node.subject(case: first.caseHandle, clinic: PostgresNodes.clinicA) }
            await #expect(throws: history) {
                try await node.openForChange(case: first.caseHandle, clinic: PostgresNodes.clinicA, history: true)
            }
        }
        if let summary {
            await #expect(throws: summary) { try await node.summary(case: first.caseHandle, clinic: PostgresNodes.clinicA) }
        }
        if attack == .moveTheDueDate || attack == .redirectTheCaseLink {
            // The due list does not hand out a changed date, or another subject's handle.
            await #expect(throws: (any Error).self) {
                try await node.casesDue(clinic: PostgresNodes.clinicA, before: Day("2100-01-01")!)
            }
        }
        if attack == .swapTheCodeIndex {
            // Neither code opens the other subject: the row MAC binds the code index.
            for code in [first.code, second.code] {
                await #expect(throws: StorageError.integrity(what: "subject row")) { try await node.subject(code: code) }
            }
        } else if attack != .redirectTheCaseLink {
            // The other subject is untouched and still served.
            let view = try await node.subject(code: second.code)
            #expect(view.records.first.map { String(decoding: $0.plaintext, as: UTF8.self) } == "second")
        }
    }

    /// No note, code or case handle reaches the data directory in clear: not the tables, not
    /// the WAL. The planted control shows that the scan finds what is there.
    @Test func nothingInClearReachesTheDataDirectory() async throws {
        let nodes = try PostgresNodes()
        let node = try await nodes.node()
        defer { Task { await node.close() } }
        let consent = "consent-marker-\(UUID().uuidString)"
        let note = "checkup-marker-\(UUID().uuidString)"
        let receipt = try await PostgresNodes.enrol(node, consent: consent)
        try await PostgresNodes.addCheckup(node, receipt.caseHandle, clinic: PostgresNodes.clinicA, note: note)
        let linked = try await node.link(
            code: receipt.code, clinic: PostgresNodes.clinicB, record: NewRecord(kind: .link, plaintext: Array(note.utf8)), counters: [])

        for needle in [consent, note, "summary of \(consent)", receipt.code, receipt.caseHandle.text, linked.text] {
            #expect(try nodes.filesHolding(needle).isEmpty, "\(needle) is in clear")
        }
        let control = "control-marker-\(UUID().uuidString)"
        try nodes.sql("CREATE TABLE careless (x TEXT); INSERT INTO careless VALUES ('\(control)');")
        #expect(try nodes.filesHolding(control).isEmpty == false)
    }
}
