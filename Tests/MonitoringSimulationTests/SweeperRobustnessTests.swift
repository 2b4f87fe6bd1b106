import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

/// One unreadable subject must not stop the forgetting of the others.
struct SweeperRobustnessTests {
    /// A subject whose wrapped key was swapped for another's (a database writer without keys)
    /// fails to open: it is erased at once as tampered (`erasedIntegrity`, docs/CRYPTO.md
    /// §Authenticated columns), and the forgetting of the others goes on.
    @Test func aTamperedSubjectIsErasedAndTheRestAreErasedToo() async throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
        let rules = ThreeYearSimulationTests.rules
        let clock = FixedDayClock(Day("2026-01-01")!)
        let service = MonitoringService(storage: store, rules: rules, clock: clock)
        func enrol() async throws -> EnrolResponse {
            let body =
                "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-01-01\",\"method\":\"written\",\"scope\":[\"monitoring\"]},\"category\":\"sim\",\"enrolledOn\":\"2026-01-01\"}"
            return try await service.enrol(
                clinic: ThreeYearSimulationTests.clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
        }
        let broken = try await enrol()
        let fine = try await enrol()
        // Break the first subject's wrapped key (it sorts first in the review order).
        let result = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                tmp.sub("registry.sqlite"),
                "UPDATE subject SET wrapped_dek = (SELECT wrapped_dek FROM subject WHERE id = 2) WHERE id = 1;",
            ])
        #expect(result.status == 0)
        // Past everyone's retention cap (730 days).
        clock.set(Day("2028-06-01")!)
        let report = try await Sweeper(storage: store, rules: rules, clock: clock).run()
        #expect(report.failed == 0)
        #expect(report.erasedIntegrity == 1)
        #expect(report.erasedCap == 1)
        #expect(await ThreeYearSimulationTests.exists(store, CaseHandle(fine.case)!) == false)
        #expect(await ThreeYearSimulationTests.exists(store, CaseHandle(broken.case)!) == false)
        #expect(try await store.subjectCount() == 0)
    }

    /// The review's attack: a subject at its retention cap has `review_on` cleared (or its status
    /// set to one the sweeper skips) with sqlite3. Today's code left it alive and readable while
    /// an untouched control enrolled the same day was erased. Now the sweep's integrity check
    /// erases it, audited as `erase-integrity`.
    @Test(arguments: [
        "UPDATE subject SET review_on = NULL WHERE id = 1;",
        "UPDATE subject SET review_on = '2099-01-01' WHERE id = 1;",
        "UPDATE subject SET status = 'completed', review_on = NULL, next_due = NULL WHERE id = 1;",
    ])
    func aSubjectWhoseReviewDateWasClearedIsStillForgotten(_ attack: String) async throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
        let rules = ThreeYearSimulationTests.rules
        let clock = FixedDayClock(Day("2026-01-01")!)
        let service = MonitoringService(storage: store, rules: rules, clock: clock)
        let body =
            "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-01-01\",\"method\":\"written\",\"scope\":[\"monitoring\"]},\"category\":\"sim\",\"enrolledOn\":\"2026-01-01\"}"
        let tampered = try await service.enrol(
            clinic: ThreeYearSimulationTests.clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
        let control = try await service.enrol(
            clinic: ThreeYearSimulationTests.clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
        #expect(try Binaries.runExecutable("/usr/bin/sqlite3", [tmp.sub("registry.sqlite"), attack]).status == 0)
        clock.set(Day("2028-06-01")!)  // past the 730-day cap of both
        let report = try await Sweeper(storage: store, rules: rules, clock: clock).run()
        #expect(await ThreeYearSimulationTests.exists(store, CaseHandle(control.case)!) == false)
        #expect(
            await ThreeYearSimulationTests.exists(store, CaseHandle(tampered.case)!) == false,
            "\(attack): the tampered subject outlived its cap")
        #expect(report.erasedIntegrity == 1 && report.erasedCap == 1, "\(report)")
        #expect(try await store.subjectCount() == 0)
        let audit = try Binaries.runExecutable(
            "/usr/bin/sqlite3",
            [
                tmp.sub("registry.sqlite"),
                "SELECT action FROM audit_entry WHERE actor = 'system sweeper' ORDER BY seq",
            ]
        ).stdout
        #expect(audit.contains("erase-integrity") && audit.contains("erase-cap"), "\(audit)")
    }
}
