import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import RegistryProtocol
import Testing

/// Several nodes on one PostgreSQL registry (issue 17; docs/STORAGE.md §PostgreSQL, "Several
/// nodes"): each node is a store with a pool of its own and its own copy of the keyring, as
/// several anonregd on several hosts are.
@Suite(.timeLimit(.minutes(10)))
struct PostgresSeveralNodesTests {
    @Test func aCaseEnrolledOnOneNodeIsLinkedByCodeAndFollowedOnTheOther() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        let b = try await nodes.node()
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }

        let receipt = try await PostgresNodes.enrol(a, consent: "moved-from-a")
        let handleB = try await b.link(
            code: receipt.code, clinic: PostgresNodes.clinicB, record: NewRecord(kind: .link, plaintext: Array("linked".utf8)),
            counters: [])
        // Linking again, from either node, hands back the same case.
        #expect(
            try await a.link(code: receipt.code, clinic: PostgresNodes.clinicB, record: NewRecord(kind: .link, plaintext: []), counters: [])
                == handleB)
        try await PostgresNodes.addCheckup(b, handleB, clinic: PostgresNodes.clinicB, note: "on b")
        try await PostgresNodes.addCheckup(a, receipt.caseHandle, clinic: PostgresNodes.clinicA, note: "on a")

        for node in [a, b] {
            #expect(try await PostgresNodes.notes(node, receipt.caseHandle, clinic: PostgresNodes.clinicA) == ["on b", "on a"])
            #expect(try await PostgresNodes.notes(node, handleB, clinic: PostgresNodes.clinicB) == ["on b", "on a"])
            let byCode = try await node.subject(code: receipt.code)
            #expect(byCode.clinics == [PostgresNodes.clinicA, PostgresNodes.clinicB])
            #expect(byCode.records.map(\.kind) == [.consent, .episode, .link, .checkup, .checkup])
            // The summary read opens no record, and sees the last check-up's summary.
            let summary = try await node.summary(case: handleB, clinic: PostgresNodes.clinicB)
            #expect(summary.records.isEmpty)
            #expect(summary.summary == Array("after on a".utf8))
        }
        // A clinic never reaches a case through another clinic's handle.
        await #expect(throws: StorageError.caseNotFound) {
            try await b.subject(case: handleB, clinic: PostgresNodes.clinicA)
        }
        // Both nodes list the case as due for both clinics.
        #expect(try await b.casesDue(clinic: PostgresNodes.clinicA, before: Day("2027-06-01")!).map(\.caseHandle) == [receipt.caseHandle])
        #expect(try await a.casesDue(clinic: PostgresNodes.clinicB, before: Day("2027-06-01")!).map(\.caseHandle) == [handleB])
    }

    /// Eight writers, four on each node, append check-ups to one case at once. Every commit
    /// that returned is in the history exactly once, and nothing else is. Without the row lock
    /// before the stamp comparison, two commits that opened the same state both append.
    @Test func theSameCaseDrivenFromBothNodesLosesAndDoublesNothing() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        let b = try await nodes.node()
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }
        let receipt = try await PostgresNodes.enrol(a)
        let handleB = try await b.link(
            code: receipt.code, clinic: PostgresNodes.clinicB, record: NewRecord(kind: .link, plaintext: []), counters: [])

        let perWriter = 12
        let conflicts = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<8 {
                let onA = writer % 2 == 0
                group.addTask {
                    var conflicts = 0
                    for n in 0..<perWriter {
                        conflicts += try await PostgresNodes.addCheckup(
                            onA ? a : b, onA ? receipt.caseHandle : handleB, clinic: onA ? PostgresNodes.clinicA : PostgresNodes.clinicB,
                            note: "w\(writer)-\(n)")
                    }
                    return conflicts
                }
            }
            return try await group.reduce(0, +)
        }
        let notes = try await PostgresNodes.notes(b, receipt.caseHandle, clinic: PostgresNodes.clinicA)
        let expected = Set((0..<8).flatMap { w in (0..<perWriter).map { "w\(w)-\($0)" } })
        #expect(notes.count == expected.count)
        #expect(Set(notes) == expected)
        // Each writer's own check-ups stay in the order it made them.
        for writer in 0..<8 {
            let own = notes.filter { $0.hasPrefix("w\(writer)-") }
            #expect(own == (0..<perWriter).map { "w\(writer)-\($0)" })
        }
        // The race was real: commits did find the subject changed under them.
        #expect(conflicts > 0)
        // The summary is the last commit's.
        let summary = try await a.summary(case: receipt.caseHandle, clinic: PostgresNodes.clinicA)
        #expect(summary.summary == Array("after \(notes.last!)".utf8))
    }

    /// A commit whose stamp is stale is refused and writes nothing: no record, no column, no
    /// audit entry.
    @Test func aStaleCommitIsRefusedAndChangesNothing() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        let b = try await nodes.node()
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }
        let receipt = try await PostgresNodes.enrol(a)
        let opened = try await a.openForChange(case: receipt.caseHandle, clinic: PostgresNodes.clinicA, history: true)
        try await PostgresNodes.addCheckup(b, receipt.caseHandle, clinic: PostgresNodes.clinicA, note: "first")
        let before = try nodes.sql("SELECT count(*) FROM record; SELECT count(*) FROM audit_entry;")

        let stale = SubjectChange(
            append: [NewRecord(kind: .checkup, plaintext: Array("stale".utf8))],
            columns: SubjectColumns(status: .completed, nextDue: nil, reviewOn: Day("2030-01-01")))
        let recorder = AuditRecorder(.init(actor: "clinic clinic-a", action: "checkup"))
        await #expect(throws: StorageError.subjectChanged) {
            try await AuditRecorder.$current.withValue(recorder) {
                try await a.commit(stale, case: receipt.caseHandle, clinic: PostgresNodes.clinicA, ifUnchanged: opened.stamp)
            }
        }
        #expect(try nodes.sql("SELECT count(*) FROM record; SELECT count(*) FROM audit_entry;") == before)
        let view = try await b.subject(case: receipt.caseHandle, clinic: PostgresNodes.clinicA)
        #expect(view.columns == PostgresNodes.columns())
        #expect(try await PostgresNodes.notes(b, receipt.caseHandle, clinic: PostgresNodes.clinicA) == ["first"])
    }

    @Test func unknownHandlesAndCodesAreRefusedAsAbsent() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        defer { Task { await a.close() } }
        let receipt = try await PostgresNodes.enrol(a)
        await #expect(throws: StorageError.caseNotFound) {
            try await a.subject(case: try SubjectKeysForTests.newHandle(), clinic: PostgresNodes.clinicA)
        }
        await #expect(throws: StorageError.codeNotFound) { try await a.subject(code: "not a code") }
        // A re-issued code replaces the old one on every node.
        let fresh = try await a.reissueCode(case: receipt.caseHandle, clinic: PostgresNodes.clinicA)
        let b = try await nodes.node()
        defer { Task { await b.close() } }
        await #expect(throws: StorageError.codeNotFound) { try await b.subject(code: receipt.code) }
        #expect(try await b.subject(code: fresh).records.count == 2)
    }

    /// Entries appended by both nodes at once form one chain that verifies, with checkpoints
    /// signed by either; a database administrator who rewrites, deletes or truncates it is caught.
    @Test func bothNodesEntriesFormOneChainThatCatchesRewrites() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node(checkpointEvery: 5)
        let b = try await nodes.node(checkpointEvery: 5)
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }
        let receipt = try await PostgresNodes.enrol(a)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<6 {
                let node = writer % 2 == 0 ? a : b
                group.addTask {
                    for n in 0..<6 {
                        let recorder = AuditRecorder(.init(actor: "clinic clinic-a", action: "checkup"))
                        try await AuditRecorder.$current.withValue(recorder) {
                            try await PostgresNodes.addCheckup(
                                node, receipt.caseHandle, clinic: PostgresNodes.clinicA, note: "\(writer)-\(n)")
                        }
                        #expect(recorder.appendedWithEffect)
                    }
                }
            }
            try await group.waitForAll()
        }
        let report = try await b.verifyAudit()
        #expect(report.ok, "\(report)")
        #expect(report.entries == 36)
        #expect(report.checkpoints == 7)
        // The subject's own access log finds all 36 through either node.
        let reference = try await a.subject(case: receipt.caseHandle, clinic: PostgresNodes.clinicA).auditReference
        #expect(try await b.auditRecords(subjectReference: reference).count == 36)

        try nodes.sql("UPDATE audit_entry SET result = 'forged' WHERE seq = 12;")
        #expect(try await a.verifyAudit().ok == false)
        try nodes.sql(
            "UPDATE audit_entry SET result = 'ok' WHERE seq = 12; DELETE FROM audit_subject WHERE seq = 20; DELETE FROM audit_entry WHERE seq = 20;"
        )
        #expect(try await a.verifyAudit().ok == false)
    }

    @Test func aNodeWithAnotherKeyringIsRefusedAndChangesNothing() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        _ = try await PostgresNodes.enrol(a)
        await a.close()
        let otherDirectory = TemporaryDirectory()
        let other = KeyCustody(try Keyring.create(in: otherDirectory.sub("keys")))
        let before = try nodes.sql("SELECT count(*), max(id) FROM subject; SELECT mac FROM keyring_binding;")
        let error = await PostgresBackendTests.refusal {
            _ = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: other)
        }
        guard case .keyringMismatch = error else {
            Issue.record("expected keyringMismatch, got \(String(describing: error))")
            return
        }
        #expect(try nodes.sql("SELECT count(*), max(id) FROM subject; SELECT mac FROM keyring_binding;") == before)
        // A binding removed behind anonreg's back, with subjects present, is refused too.
        try nodes.sql("DELETE FROM keyring_binding;")
        let emptied = await PostgresBackendTests.refusal { _ = try await nodes.node() }
        guard case .keyringMismatch = emptied else {
            Issue.record("expected keyringMismatch, got \(String(describing: emptied))")
            return
        }
    }
}

enum SubjectKeysForTests {
    /// A well-formed handle no clinic holds.
    static func newHandle() throws -> CaseHandle {
        CaseHandle(CaseHandle.prefix + String(repeating: "ab", count: CaseHandle.randomBytes))!
    }
}
