import Foundation
import RegistryCore
import RegistryKeyring
import Testing

@testable import RegistryStore

/// The fault run's one `500 internal_error` (docs/ROBUSTNESS.md, "Open finding"): enrolments,
/// check-ups and reads running while the KEK is rotated and DEKs are rewrapped. A request must
/// never fail because the keyring it looked at is older than a row it reads: a row names a KEK
/// version only after the keyring holding that version was installed in the store.
struct KeyRotationRaceTests {
    final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var errors: [String] = []
        private(set) var done = 0
        func failed(_ what: String, _ error: any Error) { lock.withLock { errors.append("\(what): \(error)") } }
        func succeeded() { lock.withLock { done += 1 } }
    }

    @Test func enrolmentsCheckupsAndReadsSurviveRotationAndRewrap() async throws {
        let f = try StoreFixture()
        let failures = Failures()
        var seeded: [EnrolmentReceipt] = []
        for _ in 0..<20 { seeded.append(try await f.enrol()) }
        let handles = seeded.map(\.caseHandle)
        let rotations = 12

        await withTaskGroup(of: Void.self) { group in
            // Rotations, each followed by a rewrap in small batches, like `anonreg keys rotate`
            // then `anonreg keys rewrap --batch-size 4`.
            group.addTask {
                for _ in 0..<rotations {
                    do {
                        f.store.keys.replace(try f.store.keyring.rotatingKEK())
                        var progress = try await f.store.rewrapBatch(limit: 4)
                        while progress.remaining > 0 { progress = try await f.store.rewrapBatch(limit: 4) }
                    } catch { failures.failed("rotate/rewrap", error) }
                }
            }
            for worker in 0..<6 {
                group.addTask {
                    for i in 0..<40 {
                        do {
                            let receipt = try await f.enrol()
                            _ = try await f.addCheckup(receipt.caseHandle, note: "w\(worker)n\(i)")
                            _ = try await f.store.subject(case: handles[(worker + i) % handles.count], clinic: StoreFixture.clinicA)
                            _ = try await f.store.subject(code: receipt.code)
                            _ = try await f.store.casesDue(clinic: StoreFixture.clinicA, before: .init("2028-01-01")!)
                            failures.succeeded()
                        } catch { failures.failed("worker \(worker) step \(i)", error) }
                    }
                }
            }
        }
        print(
            "key-rotation-race: rotations=\(rotations) rounds-ok=\(failures.done) errors=\(failures.errors.count) first=\(failures.errors.prefix(3))"
        )
        #expect(failures.errors.isEmpty, "\(failures.errors.prefix(5))")
        // Everything is under the final primary once the last rewrap ran, and still opens.
        #expect(try await f.store.kekUsage().keys.sorted() == [f.store.keyring.primaryKEK.version])
        for receipt in seeded { _ = try await f.store.subject(code: receipt.code) }
    }
}
