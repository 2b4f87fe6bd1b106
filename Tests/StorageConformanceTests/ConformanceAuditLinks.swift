import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryProtocol
import Testing

/// The audit log's links to subjects (docs/CRYPTO.md §Audit), for every backend: an entry is
/// linked to its subject's reference only while the subject exists, so that an erasure leaves
/// nothing in the log by which the subject's accesses could be listed.
struct ConformanceAuditLinks {
    /// A status read as the server makes it: the read, then its entry in a write of its own.
    static func statusRead(_ registry: Registry, _ handle: CaseHandle) async throws -> AuditRecorder {
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic clinic-a", action: "read-status"))
        _ = try await AuditRecorder.$current.withValue(recorder) {
            try await registry.backend.summary(case: handle, clinic: Registry.clinicA)
        }
        return recorder
    }

    /// A seized server after an erasure: a read of the subject whose entry was appended after
    /// the erasure committed (the erasure raced the read, on this node or another) must not
    /// put a link to the erased subject back. A read of a subject that still exists is linked,
    /// so the check can fail both ways.
    @Test(arguments: Backends.all)
    func aReadsEntryIsLinkedOnlyWhileItsSubjectExists(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        let kept = try await registry.enrol(consent: "kept")
        let gone = try await registry.enrol(consent: "gone")
        let keptRead = try await Self.statusRead(registry, kept.caseHandle)
        let goneRead = try await Self.statusRead(registry, gone.caseHandle)

        try await registry.backend.erase(case: gone.caseHandle, clinic: Registry.clinicA, counters: [])
        for read in [keptRead, goneRead] {
            #expect(!read.appendedWithEffect)
            try await registry.backend.appendAudit(try #require(read.event(result: "ok")))
        }

        #expect(try await registry.backend.auditRecords(subjectReference: kept.view.auditReference).map(\.action) == ["read-status"])
        #expect(try await registry.backend.auditRecords(subjectReference: gone.view.auditReference).isEmpty)
        let report = try await registry.backend.verifyAudit()
        #expect(report.ok, "\(report.problem ?? "")")
        #expect(report.entries == 2)
    }
}
