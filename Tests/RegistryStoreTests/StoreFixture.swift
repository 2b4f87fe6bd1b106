import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol

@testable import RegistryStore

/// A keyring and a store in a fresh temporary state directory.
struct StoreFixture {
    let tmp = TemporaryDirectory()
    let keyring: Keyring
    let store: SQLiteRegistryStore

    static let clinicA = ClinicID("clinic-a")!
    static let clinicB = ClinicID("clinic-b")!

    init() throws {
        keyring = try Keyring.create(in: tmp.sub("keys"))
        store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
    }

    var databaseFiles: [String] { ["registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm"].map { tmp.sub($0) } }

    static func columns(due: String? = "2027-01-01") -> SubjectColumns {
        SubjectColumns(status: .active, nextDue: due.flatMap { Day($0) }, reviewOn: nil)
    }

    static func counter(_ metric: String, clinic: ClinicID = clinicA) -> CounterIncrement {
        CounterIncrement(CounterKey(month: Month("2026-11")!, category: "dependence", clinic: clinic, metric: metric))
    }

    @discardableResult
    func enrol(
        clinic: ClinicID = StoreFixture.clinicA, consent: String = "consent", linkage: [UInt8]? = nil,
        due: String? = "2027-01-01", counters: [CounterIncrement] = []
    ) async throws -> EnrolmentReceipt {
        try await store.enrol(
            Enrolment(
                clinic: clinic, linkage: linkage,
                records: [
                    NewRecord(kind: .consent, plaintext: Array(consent.utf8)),
                    NewRecord(kind: .episode, plaintext: Array("episode".utf8)),
                ],
                columns: Self.columns(due: due), counters: counters))
    }

    @discardableResult
    func addCheckup(_ handle: CaseHandle, note: String, clinic: ClinicID = StoreFixture.clinicA) async throws -> SubjectView {
        try await Self.change(store, handle, clinic: clinic) { view in
            SubjectChange(append: [NewRecord(kind: .checkup, plaintext: Array(note.utf8))], columns: view.columns)
        }
    }

    /// open → decide → commit-if-unchanged, as MonitoringService does it, retried until the
    /// commit holds (tests race many writers on one case on purpose). Returns the view after.
    @discardableResult
    static func change(
        _ store: SQLiteRegistryStore, _ handle: CaseHandle, clinic: ClinicID = StoreFixture.clinicA,
        _ decide: (SubjectView) throws -> SubjectChange
    ) async throws -> SubjectView {
        for _ in 0..<1000 {
            let opened = try await store.openForChange(case: handle, clinic: clinic)
            let change = try decide(opened.view)
            do {
                try await store.commit(change, case: handle, clinic: clinic, ifUnchanged: opened.stamp)
            } catch .subjectChanged {
                continue
            }
            return try await store.subject(case: handle, clinic: clinic)
        }
        throw StorageError.subjectChanged
    }

    /// Runs raw SQL against the file with the sqlite3 shell, as an attacker with the disk would;
    /// returns what it prints.
    @discardableResult
    func sqlite(_ sql: String) throws -> String {
        let result = try Binaries.runExecutable("/usr/bin/sqlite3", [tmp.sub("registry.sqlite"), sql])
        guard result.status == 0 else { throw SQLiteFailed() }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    struct SQLiteFailed: Error {}
}

extension SubjectView {
    var plaintexts: [String] { records.map { String(decoding: $0.plaintext, as: UTF8.self) } }
}
