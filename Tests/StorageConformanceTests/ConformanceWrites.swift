import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import Synchronization
import Testing

/// Invariant 5 (acknowledged means durable) and the change contract (docs/STORAGE.md §Changes).
struct ConformanceWrites {
    /// Writers on their own cases and writers racing on one shared case: every write lands
    /// once, and every check-up of the shared case was decided on all the ones before it.
    @Test(arguments: Backends.all)
    func concurrentWritersLoseNothing(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        let shared = try await registry.enrol()
        var own: [CaseHandle] = []
        for _ in 0..<6 { own.append(try await registry.enrol().caseHandle) }
        let handles = own
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (w, handle) in handles.enumerated() {
                group.addTask {
                    for i in 0..<5 { try await registry.addCheckup(handle, note: "own-\(w)-\(i)") }
                }
                group.addTask {
                    // The note says how many check-ups the decision saw.
                    for _ in 0..<5 {
                        try await registry.addCheckup(shared.caseHandle) { view in
                            "seen-\(view.records.filter { $0.kind == .checkup }.count)"
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        for (w, handle) in handles.enumerated() {
            #expect(try await registry.notes(handle) == (0..<5).map { "own-\(w)-\($0)" })
        }
        // Each stored check-up was decided on every one stored before it.
        #expect(try await registry.notes(shared.caseHandle) == (0..<30).map { "seen-\($0)" })
    }

    /// A commit whose stamp no longer holds writes nothing: no record, no column, no counter.
    @Test(arguments: Backends.all)
    func aStaleCommitWritesNothing(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        let receipt = try await registry.enrol()
        let stale = try await registry.backend.openForChange(case: receipt.caseHandle, clinic: Registry.clinicA)
        try await registry.addCheckup(receipt.caseHandle, note: "landed first")
        var columns = stale.view.columns
        columns.status = .completed
        await #expect(throws: StorageError.subjectChanged) {
            try await registry.backend.commit(
                SubjectChange(
                    append: [NewRecord(kind: .checkup, plaintext: Array("stale".utf8))], columns: columns,
                    counters: [Registry.counter("checkup")]),
                case: receipt.caseHandle, clinic: Registry.clinicA, ifUnchanged: stale.stamp)
        }
        let view = try await registry.backend.subject(case: receipt.caseHandle, clinic: Registry.clinicA)
        #expect(try await registry.notes(receipt.caseHandle) == ["landed first"])
        #expect(view.columns == stale.view.columns)
        #expect(try await registry.backend.counters(from: Registry.month, to: Registry.month).isEmpty)
    }

    /// A writer process is SIGKILLed mid-write, five times: every write it was told was done
    /// is there when the registry is opened again.
    @Test(arguments: Backends.all)
    func sigkillLosesNoAcknowledgedWrite(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        try registry.backend.close()
        var acknowledged: [CaseHandle: Set<String>] = [:]
        var total = 0
        // Five rounds, and more while the writer has acknowledged too few writes for the test
        // to mean anything (a loaded machine): each round kills it after a delay.
        var round = 0
        while round < 5 || (total <= 20 && round < 15) {
            defer { round += 1 }
            var wait = Int.random(in: 200...600)
            var run = try harness.killedWriter(registry.directory, afterMilliseconds: wait)
            while run.0 == nil, wait <= 9600 {
                wait *= 2
                run = try harness.killedWriter(registry.directory, afterMilliseconds: wait)
            }
            guard let handle = run.0 else {
                Issue.record("round \(round): the writer never enrolled")
                continue
            }
            acknowledged[handle, default: []].formUnion(run.1)
            total += run.1.count
            let reopened = try await registry.reopened()
            for (handle, tokens) in acknowledged {
                let stored = Set(try await registry.notes(handle, clinic: ClinicID("crash")!, backend: reopened))
                #expect(tokens.subtracting(stored).isEmpty, "round \(round): \(tokens.subtracting(stored).count) acknowledged writes lost")
            }
            try reopened.close()
        }
        #expect(total > 20, "the writer acknowledged only \(total) writes")
    }
}
