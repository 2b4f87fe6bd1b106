import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import Testing

/// Invariant 1 (nothing in clear) and invariant 4 (erasure leaves nothing), for every backend.
struct ConformancePlaintextAndErasure {
    static let noteMarker = "NOTE-MARKER-5c1d0e"
    static let formMarker = "FORM-MARKER-93ab7f"

    /// A disk thief reads every file the backend wrote, before and after the backend closes,
    /// and looks for what was written through the contract: a note, a consent form, the
    /// patient code in every form it takes, the linkage value raw and in hex.
    @Test(arguments: Backends.all)
    func plantedMarkersAreInNoFileTheBackendWrites(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        let linkage = (0..<64).map { UInt8(($0 * 53 + 7) & 0xff) }
        let receipt = try await registry.enrol(consent: "{\"form\":\"\(Self.formMarker)\"}", linkage: linkage)
        try await registry.addCheckup(receipt.caseHandle, note: Self.noteMarker)
        let code = try PatientCode.parse(receipt.code)
        let needles: [(String, [UInt8])] = [
            ("note", Array(Self.noteMarker.utf8)),
            ("consent form", Array(Self.formMarker.utf8)),
            ("code text", Array(receipt.code.utf8)),
            ("code without hyphens", Array(receipt.code.replacingOccurrences(of: "-", with: "").utf8)),
            ("code bytes", code.bytes.withUnsafeBytes { Array($0) }),
            ("linkage bytes", linkage),
            ("linkage hex", Array(Hex.encode(linkage).utf8)),
        ]
        for phase in ["open", "closed"] {
            if phase == "closed" { try registry.backend.close() }
            #expect(!harness.files(registry.directory).isEmpty)
            for (what, needle) in needles {
                #expect(registry.filesHold(needle).isEmpty, "\(what) in clear (\(phase))")
            }
        }
    }

    /// The control: a marker the harness writes in clear is found, so the scan above can fail.
    @Test(arguments: Backends.all)
    func theScanFindsAMarkerWrittenInClear(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        try await registry.enrol()
        try harness.plantInClear(Self.noteMarker, registry.directory)
        #expect(!registry.filesHold(Array(Self.noteMarker.utf8)).isEmpty)
    }

    /// A seized server after an erasure: no byte by which the subject could be recognised is
    /// in any file, while another subject's data stays readable.
    @Test(arguments: Backends.all)
    func anErasedSubjectLeavesNoTrace(_ harness: any BackendHarness) async throws {
        let registry = try await Registry(harness)
        let kept = try await registry.enrol(consent: "kept")
        try await registry.addCheckup(kept.caseHandle, note: "kept-note")
        let gone = try await registry.enrol(consent: "gone", linkage: [UInt8](repeating: 0x3c, count: 64))
        for i in 0..<10 { try await registry.addCheckup(gone.caseHandle, note: "gone-note-\(i)") }
        let traces = try await harness.traces(registry.backend, case: gone.caseHandle, clinic: Registry.clinicA)
        #expect(traces.count >= 12, "the harness names the subject's rows")
        #expect(traces.contains { !registry.filesHold($0).isEmpty }, "the traces are on disk before the erasure")

        try await registry.backend.erase(case: gone.caseHandle, clinic: Registry.clinicA, counters: [Registry.counter("withdrawn")])

        // Nowhere but where the backend's documentation says ciphertext remains until its KEK
        // version is destroyed (nowhere, for SQLite).
        let remains = try harness.erasureRemains(registry.directory)
        for (i, trace) in traces.enumerated() {
            let held = registry.filesHold(trace).filter { !remains.contains($0) }
            #expect(held.isEmpty, "trace \(i) of the erased subject is still on disk: \(held)")
        }
        await #expect(throws: StorageError.caseNotFound) {
            _ = try await registry.backend.subject(case: gone.caseHandle, clinic: Registry.clinicA)
        }
        await #expect(throws: StorageError.codeNotFound) { _ = try await registry.backend.subject(code: gone.code) }
        #expect(try await registry.notes(kept.caseHandle) == ["kept-note"])
        let counted = try await registry.backend.counters(from: Registry.month, to: Registry.month)
        #expect(counted.map { $0.key.metric } == ["withdrawn"])
    }
}
