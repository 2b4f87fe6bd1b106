import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryProtocol
import Testing

/// A writer of the storage without keys (a database administrator, a forged backup): every
/// change to what steers a lookup or a decision is a typed error, never a wrong answer.
struct ConformanceTampering {
    static let subjectAttacks: [StorageAttack] = [
        .flipASealedRecord, .deleteTheNewestRecord, .clearTheReviewDate, .redirectTheCaseLink, .swapTheCodeIndex,
    ]

    @Test(arguments: Backends.all, subjectAttacks)
    func aTamperedSubjectIsATypedErrorNotAnAnswer(_ harness: any BackendHarness, _ attack: StorageAttack) async throws {
        let registry = try await Registry(harness)
        let target = try await registry.enrol(consent: "target")
        try await registry.addCheckup(target.caseHandle, note: "target-note")
        // Another clinic's subject: a redirected link can point at it without clashing with
        // that subject's own link.
        let other = try await registry.enrol(clinic: Registry.clinicB, consent: "other")
        try await registry.addCheckup(other.caseHandle, note: "other-note", clinic: Registry.clinicB)

        try harness.attack(attack, registry.directory)

        let result: Result<SubjectView, StorageError>
        do { result = .success(try await registry.backend.subject(case: target.caseHandle, clinic: Registry.clinicA)) } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let view):
            Issue.record("\(attack): the tampered subject was served (\(view.records.count) records)")
        case .failure(let error):
            #expect(error.isTamperingError, "\(attack): \(error)")
        }
        // The same attack seen through a change: refused as tampering, nothing written.
        do {
            _ = try await registry.backend.openForChange(case: target.caseHandle, clinic: Registry.clinicA)
            Issue.record("\(attack): the tampered subject was opened for a change")
        } catch {
            #expect(error.isTamperingError, "\(attack): \(error)")
        }
        // The reads that open no record (status, and a check-up's open) read the row, its link
        // and its records' extent, not the records: every attack on those is refused there too.
        // A flipped record is caught when a record is opened, as above.
        if attack != .flipASealedRecord {
            do {
                _ = try await registry.backend.summary(case: target.caseHandle, clinic: Registry.clinicA)
                Issue.record("\(attack): the tampered subject's status was served")
            } catch {
                #expect(error.isTamperingError, "\(attack) (status): \(error)")
            }
            do {
                _ = try await registry.backend.openForChange(case: target.caseHandle, clinic: Registry.clinicA, history: false)
                Issue.record("\(attack): the tampered subject was opened for a check-up")
            } catch {
                #expect(error.isTamperingError, "\(attack) (check-up open): \(error)")
            }
        }
        // A patient code opens its own subject or nothing: never the other subject's record.
        for (receipt, own) in [(target, "target"), (other, "other")] {
            if let view = try? await registry.backend.subject(code: receipt.code) {
                #expect(
                    view.records.first.map { String(decoding: $0.plaintext, as: UTF8.self) } == own,
                    "\(attack): a code opened another's record")
            }
        }
        // The other subject reads as itself, never with the target's data. The attacks that also
        // touch it (a redirected link now names it; a swapped code index is its own) make its
        // own checks fail, as a typed error too.
        do {
            #expect(try await registry.notes(other.caseHandle, clinic: Registry.clinicB) == ["other-note"])
        } catch let error as StorageError {
            #expect(
                [.redirectTheCaseLink, .swapTheCodeIndex].contains(attack) && error.isTamperingError,
                "\(attack): the other subject: \(error)")
        }
    }

    /// A rewritten audit entry fails verification; the log verified before the attack.
    @Test(arguments: Backends.all)
    func aRewrittenAuditEntryFailsVerification(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        for i in 0..<5 {
            try await registry.backend.appendAudit(
                AuditEvent(actor: "clinic clinic-a", action: "read-status", result: "ok \(i)", subjectReference: nil))
        }
        _ = try await registry.backend.checkpointAudit()
        #expect(try await registry.backend.verifyAudit().ok)
        try harness.attack(.rewriteAnAuditEntry, registry.directory)
        let report = try await registry.backend.verifyAudit()
        #expect(!report.ok)
        #expect(report.badSeq != nil, "the report names the entry: \(report.problem ?? "")")
    }
}

extension StorageError {
    /// What tampering may be reported as: a sealed item that does not open, or a clear column,
    /// record set or case link that fails its MAC.
    var isTamperingError: Bool {
        switch self {
        case .tampered, .integrity: true
        default: false
        }
    }
}
