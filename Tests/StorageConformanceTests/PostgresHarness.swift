import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import RegistryProtocol

/// The PostgreSQL backend (`RegistryPostgres`): the only file of the suite that names it. Each
/// registry directory gets a throwaway cluster of its own (`ThrowawayPostgres`), kept alive by
/// the directory and stopped with it; reopening the directory reaches the same cluster. Attacks
/// use psql as the cluster's superuser, as a database administrator would.
struct PostgresHarness: BackendHarness {
    var name: String { "postgresql" }

    /// The cluster of each registry directory, by path; the directory holds the only strong
    /// reference (`TemporaryDirectory.keep`).
    private final class Weak: @unchecked Sendable {
        weak var cluster: ThrowawayPostgres?
        init(_ cluster: ThrowawayPostgres) { self.cluster = cluster }
    }
    nonisolated(unsafe) private static var clusters: [String: Weak] = [:]
    private static let lock = NSLock()

    func cluster(_ directory: TemporaryDirectory) throws -> ThrowawayPostgres {
        Self.lock.lock()
        defer { Self.lock.unlock() }
        if let cluster = Self.clusters[directory.path]?.cluster { return cluster }
        let cluster = try ThrowawayPostgres()
        directory.keep(cluster)
        Self.clusters = Self.clusters.filter { $0.value.cluster != nil }
        Self.clusters[directory.path] = Weak(cluster)
        return cluster
    }

    func config(_ cluster: ThrowawayPostgres) -> PostgresConfig {
        PostgresConfig(
            endpoint: .unixSocket(directory: cluster.socketDirectory, port: cluster.port), database: cluster.database,
            user: cluster.user, passwordFile: cluster.passwordFile, connectTimeout: .seconds(300))
    }

    func open(_ directory: TemporaryDirectory, keys: KeyCustody) async throws -> any RegistryBackend {
        try await PostgresStore.open(config(try cluster(directory)), keys: keys)
    }

    /// Every file of the cluster's data directory, after a CHECKPOINT wrote every dirty page.
    func files(_ directory: TemporaryDirectory) -> [String] {
        guard let cluster = try? cluster(directory) else { return [] }
        _ = try? cluster.psql("CHECKPOINT;")
        let root = cluster.directory + "/data"
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        return walker.compactMap { $0 as? String }.map { root + "/" + $0 }.filter {
            var st = stat()
            return lstat($0, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }
    }

    /// docs/STORAGE.md §Erasure on PostgreSQL: the heap, TOAST and index files of the tables
    /// that held the subject (dead tuples and index entries), and the WAL.
    func erasureRemains(_ directory: TemporaryDirectory) throws -> Set<String> {
        let cluster = try cluster(directory)
        let root = cluster.directory + "/data/"
        let heap = try sql(directory, PostgresErasureRelations.filePaths).split(separator: "\n").map { root + $0 }
        let wal = files(directory).filter { $0.hasPrefix(root + "pg_wal/") }
        return Set(heap + wal)
    }

    func traces(_ backend: any RegistryBackend, case handle: CaseHandle, clinic: ClinicID) async throws -> [[UInt8]] {
        guard let store = backend as? PostgresStore else { throw HarnessFailure("not the PostgreSQL backend") }
        return try await store.storedTraces(case: handle, clinic: clinic)
    }

    func plantInClear(_ marker: String, _ directory: TemporaryDirectory) throws {
        try sql(directory, "CREATE TABLE careless (x TEXT); INSERT INTO careless VALUES ('\(marker)');")
    }

    func attack(_ attack: StorageAttack, _ directory: TemporaryDirectory) throws {
        let first = "(SELECT min(id) FROM subject)"
        let last = "(SELECT max(id) FROM subject)"
        let statements =
            switch attack {
            case .flipASealedRecord:
                "UPDATE record SET sealed = set_byte(sealed, 30, get_byte(sealed, 30) # 255) WHERE id = (SELECT max(id) FROM record WHERE subject_id = \(first));"
            case .deleteTheNewestRecord:
                "DELETE FROM record WHERE id = (SELECT max(id) FROM record WHERE subject_id = \(first));"
            case .clearTheReviewDate:
                "UPDATE subject SET review_on = NULL WHERE id = \(first);"
            case .redirectTheCaseLink:
                "UPDATE case_link SET subject_id = \(last) WHERE subject_id = \(first);"
            case .swapTheCodeIndex:
                """
                CREATE TEMP TABLE old AS SELECT (SELECT code_index FROM subject WHERE id = \(first)) AS a,
                    (SELECT code_index FROM subject WHERE id = \(last)) AS b;
                UPDATE subject SET code_index = decode(repeat('11', 32), 'hex') WHERE id = \(last);
                UPDATE subject SET code_index = (SELECT b FROM old) WHERE id = \(first);
                UPDATE subject SET code_index = (SELECT a FROM old) WHERE id = \(last);
                """
            case .rewriteAnAuditEntry:
                "UPDATE audit_entry SET result = 'forged' WHERE seq = (SELECT min(seq) FROM audit_entry);"
            case .delayTheLastDueDay:
                "UPDATE subject SET next_due = '2027-01-02' WHERE id = \(last);"
            }
        try sql(directory, statements)
    }

    func killedWriter(_ directory: TemporaryDirectory, afterMilliseconds milliseconds: Int) throws -> (CaseHandle?, Set<String>) {
        let cluster = try cluster(directory)
        let outPath = directory.sub("helper-\(UUID().uuidString).out")
        let child = try Spawned.start(
            Binaries.path("anonreg-store-crash-helper"),
            [
                "postgres", cluster.socketDirectory, "\(cluster.port)", cluster.database, cluster.user, cluster.passwordFile,
                directory.sub("keys"), "8",
            ],
            stdout: outPath, stderr: directory.sub("helper.err"))
        // The child connects and enrols before it writes, which on a loaded machine can take
        // longer than the whole kill delay: the delay counts from its first line, so every
        // round kills it while it writes.
        for _ in 0..<600 where !((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").contains("\n") {
            if child.hasExited() != nil { break }
            usleep(50_000)
        }
        usleep(UInt32(milliseconds * 1000))
        child.signal(SIGKILL)
        guard child.wait() == 128 + SIGKILL else {
            throw HarnessFailure(
                "the writer exited by itself: \((try? String(contentsOfFile: directory.sub("helper.err"), encoding: .utf8)) ?? "")")
        }
        let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: outPath)
        var handle: CaseHandle?
        var tokens = Set<String>()
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("case ") { handle = CaseHandle(String(line.dropFirst(5))) }
            if line.hasPrefix("ack ") { tokens.insert(String(line.dropFirst(4))) }
        }
        return (handle, tokens)
    }

    @discardableResult
    private func sql(_ directory: TemporaryDirectory, _ statements: String) throws -> String {
        let cluster = try cluster(directory)
        return try cluster.psql(statements, database: cluster.database)
    }
}
