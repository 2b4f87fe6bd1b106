import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import Testing

/// What a storage backend gives the conformance suite beyond the storage contract itself: a way
/// to open it, the files it writes, and what an attacker with write access to its storage (but
/// no keys) can do to it. The tests (`Conformance*.swift`) use nothing else, so a second backend
/// runs all of them by implementing this protocol and adding one line to `Backends.all`.
protocol BackendHarness: Sendable, CustomTestStringConvertible {
    var name: String { get }

    /// Opens the registry in `directory` (creating it if absent) with the keys `keys` holds.
    func open(_ directory: TemporaryDirectory, keys: KeyCustody) async throws -> any RegistryBackend

    /// Every file the backend has written for the registry in `directory`, for byte scans.
    func files(_ directory: TemporaryDirectory) -> [String]

    /// The files in which the backend's documentation says an erased subject's bytes remain,
    /// as ciphertext, until its KEK version is destroyed: none for SQLite (`secure_delete`, WAL
    /// truncation); for PostgreSQL the heap files of the tables that held it, and the WAL
    /// (docs/STORAGE.md §Erasure on PostgreSQL). Anywhere else is a failure.
    func erasureRemains(_ directory: TemporaryDirectory) throws -> Set<String>

    /// Byte strings by which the subject behind `handle` can be recognised in those files: its
    /// ids, wrapped key, indexes, MACs and sealed records.
    func traces(_ backend: any RegistryBackend, case handle: CaseHandle, clinic: ClinicID) async throws -> [[UInt8]]

    /// Writes `marker` in clear into the backend's storage, as a careless change would: the
    /// control that shows the plaintext scan can fail.
    func plantInClear(_ marker: String, _ directory: TemporaryDirectory) throws

    /// Makes `attack` on the storage in `directory`, against the subject enrolled first.
    func attack(_ attack: StorageAttack, _ directory: TemporaryDirectory) throws

    /// Starts a child process that enrols one subject and appends check-ups to it from several
    /// writers, printing each token once its write was acknowledged; SIGKILLs it after
    /// `milliseconds`. Returns the case and every acknowledged token.
    func killedWriter(_ directory: TemporaryDirectory, afterMilliseconds milliseconds: Int) throws -> (CaseHandle?, Set<String>)
}

extension BackendHarness {
    var testDescription: String { name }
}

/// The attacks of a storage writer who holds no keys (docs/THREAT-MODEL.md, "database writer").
enum StorageAttack: String, CaseIterable, Sendable {
    /// Overwrite the bytes of one of the subject's sealed records.
    case flipASealedRecord
    /// Delete the subject's newest record: a shorter history.
    case deleteTheNewestRecord
    /// Clear the subject's review date, so the sweeper would skip it.
    case clearTheReviewDate
    /// Point the subject's case link at another subject.
    case redirectTheCaseLink
    /// Swap the subject's code index with another subject's: its code would open the other.
    case swapTheCodeIndex
    /// Rewrite the result of the first audit entry.
    case rewriteAnAuditEntry
    /// Move the due day of the subject enrolled last one day later (2027-01-01 → 2027-01-02),
    /// where a due list opens it on another core than the first rows (DueList).
    case delayTheLastDueDay
}

/// Every backend the suite runs against. A new backend adds its harness here.
enum Backends {
    static let all: [any BackendHarness] = [SQLiteHarness(), PostgresHarness()]
}

/// A fresh directory with a new keyring, the custody the daemon would hold, and the backend.
struct Registry {
    let directory = TemporaryDirectory()
    let keys: KeyCustody
    let harness: any BackendHarness
    let backend: any RegistryBackend

    static let clinicA = ClinicID("clinic-a")!
    static let clinicB = ClinicID("clinic-b")!
    static let month = Month("2026-11")!

    init(_ harness: any BackendHarness) async throws {
        self.harness = harness
        keys = KeyCustody(try Keyring.create(in: directory.sub("keys")))
        backend = try await harness.open(directory, keys: keys)
    }

    /// The same directory opened again, as after a restart: the keyring loaded from disk.
    func reopened() async throws -> any RegistryBackend {
        try await harness.open(directory, keys: KeyCustody(try Keyring.load(from: KeyringSource(directory: directory.sub("keys")))))
    }

    static func counter(_ metric: String, clinic: ClinicID = clinicA) -> CounterIncrement {
        CounterIncrement(CounterKey(month: month, category: "dependence", clinic: clinic, metric: metric))
    }

    @discardableResult
    func enrol(
        clinic: ClinicID = Registry.clinicA, consent: String = "consent", linkage: [UInt8]? = nil, counters: [CounterIncrement] = []
    ) async throws -> EnrolmentReceipt {
        try await backend.enrol(
            Enrolment(
                clinic: clinic, linkage: linkage,
                records: [
                    NewRecord(kind: .consent, plaintext: Array(consent.utf8)),
                    NewRecord(kind: .episode, plaintext: Array("episode".utf8)),
                ],
                columns: SubjectColumns(status: .active, nextDue: Day("2027-01-01"), reviewOn: Day("2029-01-01")),
                counters: counters))
    }

    /// open → decide → commit-if-unchanged, retried until the commit holds (docs/STORAGE.md
    /// §Changes), appending one check-up whose text is `note`.
    func addCheckup(_ handle: CaseHandle, note: String, clinic: ClinicID = Registry.clinicA) async throws {
        try await addCheckup(handle, clinic: clinic) { _ in note }
    }

    /// The same, with the note decided on the view the open returned.
    func addCheckup(_ handle: CaseHandle, clinic: ClinicID = Registry.clinicA, note: (SubjectView) -> String) async throws {
        for _ in 0..<1000 {
            let opened = try await backend.openForChange(case: handle, clinic: clinic)
            let change = SubjectChange(
                append: [NewRecord(kind: .checkup, plaintext: Array(note(opened.view).utf8))], columns: opened.view.columns)
            do {
                try await backend.commit(change, case: handle, clinic: clinic, ifUnchanged: opened.stamp)
                return
            } catch .subjectChanged {
                continue
            }
        }
        throw StorageError.subjectChanged
    }

    /// The check-up notes of a case, in order.
    func notes(_ handle: CaseHandle, clinic: ClinicID = Registry.clinicA, backend: (any RegistryBackend)? = nil) async throws -> [String] {
        try await (backend ?? self.backend).subject(case: handle, clinic: clinic).records.filter { $0.kind == .checkup }.map {
            String(decoding: $0.plaintext, as: UTF8.self)
        }
    }

    /// Whether any file the backend wrote holds `needle`.
    func filesHold(_ needle: [UInt8]) -> [String] {
        harness.files(directory).filter { Bytes.contains(directory.bytes(of: $0), needle) }
    }
}
