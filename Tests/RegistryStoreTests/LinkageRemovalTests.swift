import AnonregTestSupport
import Foundation
import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

/// Issue: a permanent keyed hash of the linkage value on every subject grouped one person's
/// records across clinics for a disk thief, and let anyone holding the keys go from a name and a
/// birth date to the whole record. Nothing stored per subject may derive from the identity
/// (docs/CRYPTO.md §Pseudonyms, §Unique persons).
struct LinkageRemovalTests {
    static let shared = [UInt8](repeating: 0x5A, count: 64)

    /// Enrols `shared` at two clinics and five other linkage values once each, with statistics
    /// consent (so the month's unique-person tags are written), check-ups, and audit entries.
    static func populate(_ f: StoreFixture) async throws -> [EnrolmentReceipt] {
        var receipts: [EnrolmentReceipt] = []
        let mark = UniquePersonMark(month: Month("2026-12")!, category: "dependence")
        let values = [shared, shared] + (1...5).map { [UInt8](repeating: UInt8($0), count: 64) }
        for (i, value) in values.enumerated() {
            let clinic = i == 1 ? StoreFixture.clinicB : StoreFixture.clinicA
            let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic \(clinic)", action: "enrol"))
            let receipt = try await AuditRecorder.$current.withValue(recorder) {
                try await f.store.enrol(
                    Enrolment(
                        clinic: clinic, linkage: value,
                        records: [
                            NewRecord(kind: .consent, plaintext: Array("consent-\(i)".utf8)),
                            NewRecord(kind: .episode, plaintext: Array("episode-\(i)".utf8)),
                        ],
                        columns: StoreFixture.columns(), counters: [], uniquePerson: mark))
            }
            let checkup = AuditRecorder(AuditRecorder.Action(actor: "clinic \(clinic)", action: "add-checkup"))
            _ = try await AuditRecorder.$current.withValue(checkup) {
                try await f.addCheckup(receipt.caseHandle, note: "n\(i)", clinic: clinic)
            }
            receipts.append(receipt)
        }
        return receipts
    }

    /// Every table, every column, every row: no byte string of 16 bytes or more is held by rows
    /// of two different subjects. A row belongs to a subject through `subject.id`, a `subject_id`
    /// column, or (audit tables) the keyed reference of its subject. The audit chain's link
    /// columns (`prev_hash` is the previous entry's `hash`) are the only exception.
    @Test func noStoredValueIsSharedByTwoSubjects() async throws {
        let f = try StoreFixture()
        _ = try await Self.populate(f)
        let (shared, tables, values) = try await Self.sharedValues(database: f.tmp.sub("registry.sqlite"), keyring: f.keyring)
        #expect(tables.contains("subject") && tables.contains("unique_person_seen") && tables.contains("audit_subject"))
        #expect(shared.isEmpty, "values shared by subjects: \(shared)")
        #expect(values > 7 * 5, "the scan saw the subjects' values")
    }

    /// The scan can fail: on a database of the previous release (before the migration) it finds
    /// the linkage hash that two subjects share.
    @Test func theScanFindsTheSharedLinkageHashOfThePreviousRelease() async throws {
        let tmp = TemporaryDirectory()
        let fixture = try Fixtures.copyPreviousRelease(to: tmp.sub("state"))
        let keyring = try Keyring.load(from: KeyringSource(directory: tmp.sub("state/keys")))
        let (shared, _, _) = try await Self.sharedValues(database: tmp.sub("state/registry.sqlite"), keyring: keyring)
        let hashes = try #require(fixture["linkage_hashes"] as? [String])
        #expect(shared.count == 1 && shared.first?.value == hashes.first, "\(shared)")
    }

    /// Every blob of 16 bytes or more held by rows of two different subjects, as "table.column"
    /// → hex; the tables scanned; how many distinct values were seen.
    static func sharedValues(database: String, keyring: Keyring) async throws -> ([(where: String, value: String)], [String], Int) {
        let queue = try DatabaseQueue(
            path: database,
            configuration: {
                var c = Configuration()
                c.readonly = true
                return c
            }())
        defer { try? queue.close() }
        return try await queue.read { db in
            var referenceOwner: [[UInt8]: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, sid FROM subject") {
                referenceOwner[try SubjectKeys.auditReference(sid: Array(row[1] as Data), keyring: keyring)] = "subject \(row[0] as Int64)"
            }
            var seqOwner: [Int64: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT seq, subject_ref FROM audit_subject") {
                seqOwner[row[0]] = referenceOwner[Array(row[1] as Data)]
            }
            var owners: [[UInt8]: (owners: Set<String>, places: Set<String>)] = [:]
            let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            for table in tables {
                let columns = try db.columns(in: table).map(\.name)
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table)") {
                    let owner: String? =
                        switch table {
                        case "subject": "subject \(row["id"] as Int64)"
                        case "audit_subject": referenceOwner[Array(row["subject_ref"] as Data)]
                        case "audit_entry": seqOwner[row["seq"]]
                        default: columns.contains("subject_id") ? "subject \(row["subject_id"] as Int64)" : nil
                        }
                    guard let owner else { continue }
                    for column in columns where !(table == "audit_entry" && (column == "prev_hash" || column == "hash")) {
                        guard case .blob(let data) = (row[column] as DatabaseValue).storage, data.count >= 16 else { continue }
                        owners[Array(data), default: ([], [])].owners.insert(owner)
                        owners[Array(data), default: ([], [])].places.insert("\(table).\(column)")
                    }
                }
            }
            let shared = owners.filter { $0.value.owners.count > 1 }
                .map { (where: $0.value.places.sorted().joined(separator: ","), value: Hex.encode($0.key)) }
            return (shared, tables, owners.count)
        }
    }

    /// With the keyring in hand (a seized server), the linkage hash of a known identity's
    /// linkage value matches nothing on disk: no lookup by name is possible.
    @Test func theLinkageHashOfAKnownIdentityIsNowhereOnDisk() async throws {
        let f = try StoreFixture()
        _ = try await Self.populate(f)
        let hash = try SubjectKeys.linkageHash(Self.shared, keyring: f.keyring)
        for file in f.databaseFiles {
            #expect(!Bytes.contains(f.tmp.bytes(of: file), hash), "the linkage hash is in \(file)")
            #expect(!Bytes.contains(f.tmp.bytes(of: file), Self.shared), "the linkage value is in \(file)")
        }
        // Only the open month's tags exist: one per distinct value (6), linked to no subject.
        let tags = try f.sqlite("SELECT count(*) FROM unique_person_seen")
        #expect(tags == "6")
        let subjectColumns = try f.sqlite("SELECT group_concat(name) FROM pragma_table_info('subject')")
        #expect(!subjectColumns.contains("linkage"), "\(subjectColumns)")
    }

    /// Monitoring-only consent with a linkage value writes no tag at all.
    @Test func monitoringOnlyConsentWithALinkageValueWritesNoTag() async throws {
        let f = try StoreFixture()
        let rules = try #require(ThreeYearRules.rules)
        let service = MonitoringService(storage: f.store, rules: rules, clock: FixedDayClock(Day("2026-12-05")!))
        let linkage = Hex.encode(Self.shared)
        for scope in ["[\"monitoring\"]", "[\"monitoring\"]"] {
            let body =
                "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-12-01\",\"method\":\"written\",\"scope\":\(scope)},\"category\":\"sim\",\"enrolledOn\":\"2026-12-01\",\"linkage\":\"\(linkage)\"}"
            _ = try await service.enrol(clinic: StoreFixture.clinicA, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8)))
        }
        #expect(try f.sqlite("SELECT count(*) FROM unique_person_seen") == "0")
        let withStatistics =
            "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-12-01\",\"method\":\"written\",\"scope\":[\"monitoring\",\"statistics\"]},\"category\":\"sim\",\"enrolledOn\":\"2026-12-01\",\"linkage\":\"\(linkage)\"}"
        _ = try await service.enrol(
            clinic: StoreFixture.clinicA, try JSONDecoder().decode(EnrolRequest.self, from: Data(withStatistics.utf8)))
        #expect(try f.sqlite("SELECT count(*) FROM unique_person_seen") == "1", "the scan can fail: statistics consent writes one")
    }

    /// A database made by the previous release (linkage hashes on three subjects, two of them
    /// equal) comes out of the migration with no byte of any linkage hash left in the database,
    /// its WAL or its shm, and every subject still opens by its code.
    @Test func aPreviousReleaseDatabaseComesOutOfTheMigrationClean() async throws {
        let tmp = TemporaryDirectory()
        let fixture = try Fixtures.copyPreviousRelease(to: tmp.sub("state"))
        let hashes = try #require(fixture["linkage_hashes"] as? [String]).map { try Hex.decode($0) }
        let database = tmp.sub("state/registry.sqlite")
        #expect(hashes.count == 2)
        #expect(hashes.allSatisfy { Bytes.contains(tmp.bytes(of: database), $0) }, "the fixture holds them before the migration")
        let keyring = try Keyring.load(from: KeyringSource(directory: tmp.sub("state/keys")))
        let store = try SQLiteRegistryStore(path: database, keyring: keyring)
        _ = try store.checkErasureLedger()
        for suffix in ["", "-wal", "-shm"] {
            for hash in hashes {
                #expect(!Bytes.contains(tmp.bytes(of: database + suffix), hash), "a linkage hash survived in registry.sqlite\(suffix)")
            }
        }
        let subjects = try #require(fixture["subjects"] as? [String: [String: Any]])
        for name in ["a", "b", "c"] {
            let code = try #require(subjects[name]?["code"] as? String)
            _ = try await store.subject(code: code)
        }
        #expect(try await store.checkIntegrity(actor: "test").failures == 0)
        try store.close()
        for suffix in ["", "-wal", "-shm"] {
            for hash in hashes {
                #expect(
                    !Bytes.contains(tmp.bytes(of: database + suffix), hash), "a linkage hash is in registry.sqlite\(suffix) after close")
            }
        }
    }
}

/// The simulation's rules (category `sim`), for tests outside the simulation target.
enum ThreeYearRules {
    static var rules: MonitoringRules? {
        let policy = Policy(
            checkupIntervalDays: 90, remissionDays: 365, relapse: .restart, relapseExtendDays: 90, capDays: 730,
            overdueAfterDays: 30)
        return MonitoringRules(
            categories: ["sim": policy], substances: [], treatments: [],
            retention: Retention(completedGraceDays: 30, inactiveDays: 365))
    }
}
