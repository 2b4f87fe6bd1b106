import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryFormats
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

/// A withdrawal is the subject's own decision and must survive a restore. A database writer
/// without keys damages what the subject's row MAC does not cover (one record row deleted, or
/// the wrapped key zeroed), so its records fail to open. The withdrawal must still erase the
/// subject through the ledger: refused, the subject would be left to the sweeper's integrity
/// erasure, which is not ledgered (a writer could otherwise destroy anyone beyond recovery), and
/// the restore the operations guide then advises would bring back someone who withdrew.
struct WithdrawalIntegrityTests {
    @Test(arguments: ["by case", "by code"], ["delete a record row", "zero the wrapped key"])
    func aWithdrawalWhoseRecordsFailIsStillLedgered(_ path: String, _ attack: String) async throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
        defer { try? store.close() }
        let clock = FixedDayClock(Day("2026-01-01")!)
        let service = MonitoringService(storage: store, rules: ThreeYearSimulationTests.rules, clock: clock)
        let body =
            "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-01-01\",\"method\":\"written\",\"scope\":[\"monitoring\",\"statistics\"]},\"category\":\"sim\",\"enrolledOn\":\"2026-01-01\"}"
        let enrolled = try await service.enrol(
            clinic: ThreeYearSimulationTests.clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
        let sid = try #require(try await store.read { db in try SubjectRow.byID(db, 1)?.sid })
        let sql =
            attack == "delete a record row"
            ? "DELETE FROM record WHERE id = (SELECT max(id) FROM record WHERE subject_id = 1);"
            : "UPDATE subject SET wrapped_dek = zeroblob(length(wrapped_dek)) WHERE id = 1;"
        #expect(try Binaries.runExecutable("/usr/bin/sqlite3", [tmp.sub("registry.sqlite"), sql]).status == 0)
        // The records really fail: a read is refused as an integrity error.
        do {
            _ = try await service.status(clinic: ThreeYearSimulationTests.clinic, case: CaseHandle(enrolled.case)!)
            Issue.record("the damaged subject was served")
        } catch { #expect(error.code == DomainError.integrityErrorCode, "\(error)") }

        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic sim-clinic", action: "withdraw"))
        try await AuditRecorder.$current.withValue(recorder) {
            if path == "by case" {
                _ = try await service.withdraw(clinic: ThreeYearSimulationTests.clinic, case: CaseHandle(enrolled.case)!)
            } else {
                _ = try await service.withdraw(clinic: ThreeYearSimulationTests.clinic, code: enrolled.code)
            }
        }
        #expect(try await store.subjectCount() == 0)
        let ledger = ErasureLedger(keyring: keyring)
        #expect(
            (try ledger.read()?.references ?? []).contains(try ledger.reference(sid: sid)),
            "the withdrawal is not in the erasure ledger: a restore would bring the subject back")
        #expect(recorder.event(result: "ok")?.result.contains("erased without its statistics counter") == true)
    }
}
