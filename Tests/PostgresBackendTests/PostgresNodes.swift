import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import RegistryProtocol
import Testing

/// One throwaway cluster and one keyring, shared by any number of nodes (stores) opened on it:
/// what several anonregd on one registry database are, minus the HTTP in front.
final class PostgresNodes: Sendable {
    let cluster: ThrowawayPostgres
    let keysDirectory = TemporaryDirectory()
    let keys: KeyCustody

    static let clinicA = ClinicID("clinic-a")!
    static let clinicB = ClinicID("clinic-b")!

    init() throws {
        cluster = try ThrowawayPostgres()
        keys = KeyCustody(try Keyring.create(in: keysDirectory.sub("keys")))
    }

    /// A node: a store of its own (its own pool) on the shared database, with the shared keys
    /// loaded from disk, as another host holding a copy of the keys directory would.
    func node(checkpointEvery: Int = 1000, keys directory: String? = nil) async throws -> PostgresStore {
        let keyring = try Keyring.load(from: KeyringSource(directory: directory ?? keysDirectory.sub("keys")))
        return try await PostgresStore.open(
            PostgresBackendTests.config(cluster), keys: KeyCustody(keyring), auditCheckpointEvery: checkpointEvery)
    }

    /// A copy of the keys directory for a node of its own host (`cp -a`: modes and owner kept),
    /// so that each such node keeps its own erasure ledger file.
    func copyOfTheKeys() throws -> (TemporaryDirectory, String) {
        let host = TemporaryDirectory()
        let result = try Binaries.runExecutable("/bin/cp", ["-a", keysDirectory.sub("keys"), host.sub("keys")])
        guard result.status == 0 else { throw NodesFailure("cp failed: \(result.stderr)") }
        return (host, host.sub("keys"))
    }

    static func columns(due: String = "2027-01-01") -> SubjectColumns {
        SubjectColumns(status: .active, nextDue: Day(due), reviewOn: Day("2029-01-01"))
    }

    static func enrol(_ node: PostgresStore, clinic: ClinicID = clinicA, consent: String = "consent", due: String = "2027-01-01")
        async throws -> EnrolmentReceipt
    {
        try await node.enrol(
            Enrolment(
                clinic: clinic, linkage: nil,
                records: [
                    NewRecord(kind: .consent, plaintext: Array(consent.utf8)),
                    NewRecord(kind: .episode, plaintext: Array("episode".utf8)),
                ],
                columns: columns(due: due), counters: [], summary: Array("summary of \(consent)".utf8)))
    }

    /// open → decide → commit-if-unchanged, retried until the commit holds (docs/STORAGE.md
    /// §Changes); returns how many times the commit found the subject changed.
    @discardableResult
    static func addCheckup(
        _ node: PostgresStore, _ handle: CaseHandle, clinic: ClinicID, note: String, retryingUnavailable: Bool = true
    ) async throws -> Int {
        var conflicts = 0
        var unavailable = 0
        for _ in 0..<10_000 {
            do {
                let opened = try await node.openForChange(case: handle, clinic: clinic, history: false)
                let change = SubjectChange(
                    append: [NewRecord(kind: .checkup, plaintext: Array(note.utf8))], columns: opened.view.columns,
                    summary: Array("after \(note)".utf8))
                try await node.commit(change, case: handle, clinic: clinic, ifUnchanged: opened.stamp)
                return conflicts
            } catch {
                switch error {
                case .subjectChanged:
                    conflicts += 1
                case .unavailable(let reason) where retryingUnavailable && unavailable < 20 && Self.neverCommitted(reason):
                    // 503 `storage_unavailable`, as a clinic system sees it: tried again, but only
                    // for the reasons after which nothing of the write can have committed. On a
                    // loaded test machine a node's batch can wait more than 30 s for a thread that
                    // other tests' blocking calls hold (docs/STORAGE.md §Tests), and the writes
                    // queued behind it are answered this way.
                    unavailable += 1
                    print("addCheckup: \(note) answered unavailable (\(reason)); trying again")
                    try await Task.sleep(for: .milliseconds(100))
                default:
                    throw error
                }
            }
        }
        throw StorageError.subjectChanged
    }

    /// An `unavailable` reason after which the write cannot have committed: it was never run (a
    /// queue or lease wait ran out), or the server cancelled it before COMMIT (a lock or
    /// statement timeout rolls its batch or savepoint back). A lost connection is not one: its
    /// COMMIT may have landed.
    static func neverCommitted(_ reason: String) -> Bool {
        reason.hasSuffix("was not run") || reason.hasPrefix("no connection to the database within")
            || reason.hasSuffix("(SQLSTATE 57014)") || reason.hasSuffix("(SQLSTATE 55P03)")
    }

    static func notes(_ node: PostgresStore, _ handle: CaseHandle, clinic: ClinicID) async throws -> [String] {
        try await node.subject(case: handle, clinic: clinic).records(of: .checkup).map { String(decoding: $0.plaintext, as: UTF8.self) }
    }

    /// Runs SQL in the registry's database as the cluster's superuser: a database administrator.
    @discardableResult
    func sql(_ statements: String) throws -> String { try cluster.psql(statements, database: cluster.database) }

    /// Every file of the cluster's data directory (tables, WAL, everything), read as the
    /// superuser of this machine would.
    func dataFiles() -> [String] {
        let root = cluster.directory + "/data"
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var files: [String] = []
        for case let relative as String in walker {
            var isDirectory: ObjCBool = false
            let path = root + "/" + relative
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue { files.append(path) }
        }
        return files
    }

    /// The data files that hold `needle`, after a CHECKPOINT wrote every dirty page.
    func filesHolding(_ needle: String) throws -> [String] { try filesHoldingBytes(Array(needle.utf8)) }

    func filesHoldingBytes(_ bytes: [UInt8]) throws -> [String] { try filesHolding(any: [bytes])[0] }

    /// For each of `needles`, the data files that hold it: one CHECKPOINT, each file read once.
    func filesHolding(any needles: [[UInt8]]) throws -> [[String]] {
        try cluster.psql("CHECKPOINT;")
        var found = [[String]](repeating: [], count: needles.count)
        for path in dataFiles() {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let haystack = Array(data)
            for (i, needle) in needles.enumerated() where Bytes.contains(haystack, needle) { found[i].append(path) }
        }
        return found
    }
}

struct NodesFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
