import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryProtocol
import Testing

/// Due lists long enough to be opened on several cores (docs/STORAGE.md §Due list): the
/// answer is exactly what one loop would give, in the documented order, and one tampered row
/// anywhere in the list refuses the whole list.
struct ConformanceDueList {
    /// More than two slices' worth of rows (`DueList.rowsPerSlice` is 64), so that on two or
    /// more cores the list is opened by more than one thread.
    static let cases = 200

    static func enrol(_ registry: Registry, nextDue: Day, clinic: ClinicID = Registry.clinicA) async throws -> CaseHandle {
        try await registry.backend.enrol(
            Enrolment(
                clinic: clinic, linkage: nil,
                records: [NewRecord(kind: .consent, plaintext: Array("consent".utf8))],
                columns: SubjectColumns(status: .active, nextDue: nextDue, reviewOn: Day("2029-01-01")), counters: [])
        ).caseHandle
    }

    @Test(arguments: Backends.all)
    func aLongDueListIsCompleteAndInOrder(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        let first = Day("2027-01-01")!
        let before = first.adding(days: 10)
        // Due days out of enrolment order (seven of them), some after `before`; and another
        // clinic's cases, which this clinic's list never shows.
        var expected: [(day: Day, order: Int, handle: CaseHandle)] = []
        for i in 0..<Self.cases {
            let day = first.adding(days: (i * 5) % 13)
            let handle = try await Self.enrol(registry, nextDue: day)
            if day < before { expected.append((day, i, handle)) }
            if i % 20 == 0 { _ = try await Self.enrol(registry, nextDue: first, clinic: Registry.clinicB) }
        }
        expected.sort { ($0.day, $0.order) < ($1.day, $1.order) }
        #expect(expected.count > 2 * 64)

        let due = try await registry.backend.casesDue(clinic: Registry.clinicA, before: before)
        #expect(due.map(\.caseHandle) == expected.map(\.handle), "every due case once, by due day and then enrolment")
        #expect(due.map(\.nextDue) == expected.map(\.day))
        #expect(due.allSatisfy { $0.status == .active })
    }

    /// A database writer moves one due day, of the case the list opens last: the list is
    /// refused as tampering, not served with that row (or without it).
    @Test(arguments: Backends.all)
    func oneTamperedRowDeepInALongListRefusesTheList(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        let day = Day("2027-01-01")!
        for _ in 0..<Self.cases { _ = try await Self.enrol(registry, nextDue: day) }
        #expect(try await registry.backend.casesDue(clinic: Registry.clinicA, before: day.adding(days: 30)).count == Self.cases)

        try harness.attack(.delayTheLastDueDay, registry.directory)

        do {
            let due = try await registry.backend.casesDue(clinic: Registry.clinicA, before: day.adding(days: 30))
            Issue.record("the tampered list was served: \(due.count) cases")
        } catch {
            #expect(error.isTamperingError, "\(error)")
        }
    }
}
