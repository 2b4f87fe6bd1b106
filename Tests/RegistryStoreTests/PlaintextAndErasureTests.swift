import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

/// Invariant 1 (no plaintext) and invariant 4 (erasure) at the storage layer.
struct PlaintextAndErasureTests {
    static let noteMarker = "NOTE-MARKER-7f3a9c"
    static let formMarker = "FORM-MARKER-b81e22"

    /// Every form a marker could take on disk.
    static func needles(code: String, linkage: [UInt8]) throws -> [(String, [UInt8])] {
        let parsed = try PatientCode.parse(code)
        let codeBytes = parsed.bytes.withUnsafeBytes { Array($0) }
        return [
            ("note", Array(noteMarker.utf8)),
            ("consent form", Array(formMarker.utf8)),
            ("code text", Array(code.utf8)),
            ("code text without hyphens", Array(code.replacingOccurrences(of: "-", with: "").utf8)),
            ("code bytes", codeBytes),
            ("linkage bytes", linkage),
            ("linkage hex", Array(Hex.encode(linkage).utf8)),
        ]
    }

    @Test func markersWrittenThroughTheStoreAreNowhereInClear() async throws {
        let f = try StoreFixture()
        let linkage = (0..<64).map { UInt8(($0 * 37 + 11) & 0xff) }
        let receipt = try await f.enrol(consent: "{\"form\":\"\(Self.formMarker)\"}", linkage: linkage)
        _ = try await f.addCheckup(receipt.caseHandle, note: Self.noteMarker)
        // Before any checkpoint (everything still in the WAL) and after one.
        for phase in ["wal", "checkpointed"] {
            if phase == "checkpointed" { try f.store.close() }
            let files = f.databaseFiles.filter { FileManager.default.fileExists(atPath: $0) }
            #expect(files.contains(f.tmp.sub("registry.sqlite")))
            for (name, needle) in try Self.needles(code: receipt.code, linkage: linkage) {
                for file in files {
                    #expect(!Bytes.contains(f.tmp.bytes(of: file), needle), "\(name) in clear in \(file) (\(phase))")
                }
            }
        }
    }

    /// The scan itself can fail: a marker stored unsealed is found.
    @Test func theScanFindsAnUnsealedMarker() async throws {
        let f = try StoreFixture()
        try await f.enrol()
        try f.sqlite("CREATE TABLE leak(x TEXT); INSERT INTO leak VALUES ('\(Self.noteMarker)');")
        let hits = f.databaseFiles.filter { Bytes.contains(f.tmp.bytes(of: $0), Array(Self.noteMarker.utf8)) }
        #expect(!hits.isEmpty)
    }

    @Test func erasureRemovesTheKeyTheRowsAndEveryTrace() async throws {
        let f = try StoreFixture()
        let keep = try await f.enrol(consent: "keep-consent")
        _ = try await f.addCheckup(keep.caseHandle, note: "keep-note")
        let gone = try await f.enrol(consent: "gone-consent", linkage: [UInt8](repeating: 0x42, count: 64))
        for i in 0..<20 { _ = try await f.addCheckup(gone.caseHandle, note: "gone-note-\(i)") }

        // Everything the erased subject has on disk, as bytes: sid, wrapped DEK, code index, row
        // MAC and record chain head; 22 sealed records; the case link's index, sealed handle and MAC.
        let traces = try await f.store.storedTraces(case: gone.caseHandle, clinic: StoreFixture.clinicA)
        #expect(traces.count == 5 + 22 + 3)
        // They are on disk before erasure (so the scan below can fail).
        let present = traces.filter { t in f.databaseFiles.contains { Bytes.contains(f.tmp.bytes(of: $0), t) } }
        #expect(!present.isEmpty)

        try await f.store.erase(
            case: gone.caseHandle, clinic: StoreFixture.clinicA,
            counters: [StoreFixture.counter("withdrawn")])

        #expect(try await f.store.subjectCount() == 1)
        let counts = try await f.store.rowCounts()
        #expect(counts["record"] == 3, "only the kept subject's records remain")
        #expect(counts["case_link"] == 1)
        #expect(counts["subject"] == 1)
        await #expect(throws: StorageError.codeNotFound) { try await f.store.subject(code: gone.code) }
        // Not in the database, not in the WAL, not in the shm, before closing.
        for trace in traces {
            for file in f.databaseFiles where FileManager.default.fileExists(atPath: file) {
                #expect(!Bytes.contains(f.tmp.bytes(of: file), trace), "a trace of the erased subject is in \(file)")
            }
        }
        // The kept subject still reads, and the erasure was counted.
        let kept = try await f.store.subject(case: keep.caseHandle, clinic: StoreFixture.clinicA)
        #expect(kept.plaintexts.contains("keep-note"))
        let rows = try await f.store.counters(from: Month("2026-11")!, to: Month("2026-11")!)
        #expect(rows.map(\.key.metric) == ["withdrawn"])
    }

    @Test func erasureByCode() async throws {
        let f = try StoreFixture()
        let receipt = try await f.enrol()
        try await f.store.erase(code: receipt.code, counters: [])
        #expect(try await f.store.subjectCount() == 0)
        await #expect(throws: StorageError.caseNotFound) {
            try await f.store.subject(case: receipt.caseHandle, clinic: StoreFixture.clinicA)
        }
        await #expect(throws: StorageError.codeNotFound) { try await f.store.erase(code: receipt.code, counters: []) }
    }
}
