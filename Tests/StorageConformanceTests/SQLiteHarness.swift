import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryProtocol

@testable import RegistryStore

/// The embedded SQLite backend (`RegistryStore`): the only file of the suite that names it.
/// Attacks use the sqlite3 shell on the file, as a disk or database writer would.
struct SQLiteHarness: BackendHarness {
    var name: String { "sqlite" }

    func open(_ directory: TemporaryDirectory, keys: KeyCustody) async throws -> any RegistryBackend {
        try SQLiteRegistryStore(path: directory.sub("registry.sqlite"), keys: keys)
    }

    func files(_ directory: TemporaryDirectory) -> [String] {
        ["registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm"].map(directory.sub).filter {
            FileManager.default.fileExists(atPath: $0)
        }
    }

    func erasureRemains(_ directory: TemporaryDirectory) throws -> Set<String> { [] }

    func traces(_ backend: any RegistryBackend, case handle: CaseHandle, clinic: ClinicID) async throws -> [[UInt8]] {
        guard let store = backend as? SQLiteRegistryStore else { throw HarnessFailure("not the SQLite backend") }
        return try await store.storedTraces(case: handle, clinic: clinic)
    }

    func plantInClear(_ marker: String, _ directory: TemporaryDirectory) throws {
        try sqlite(directory, "CREATE TABLE careless(x TEXT); INSERT INTO careless VALUES ('\(marker)');")
    }

    func attack(_ attack: StorageAttack, _ directory: TemporaryDirectory) throws {
        let first = "(SELECT min(id) FROM subject)"
        let sql =
            switch attack {
            case .flipASealedRecord:
                "UPDATE record SET sealed = randomblob(length(sealed)) WHERE id = (SELECT max(id) FROM record WHERE subject_id = \(first));"
            case .deleteTheNewestRecord:
                "DELETE FROM record WHERE id = (SELECT max(id) FROM record WHERE subject_id = \(first));"
            case .clearTheReviewDate:
                "UPDATE subject SET review_on = NULL WHERE id = \(first);"
            case .redirectTheCaseLink:
                "UPDATE case_link SET subject_id = (SELECT max(id) FROM subject) WHERE subject_id = \(first);"
            case .swapTheCodeIndex:
                """
                CREATE TEMP TABLE old AS SELECT (SELECT code_index FROM subject WHERE id = \(first)) AS a,
                    (SELECT code_index FROM subject WHERE id = (SELECT max(id) FROM subject)) AS b;
                UPDATE subject SET code_index = X'\(String(repeating: "11", count: 32))' WHERE id = (SELECT max(id) FROM subject);
                UPDATE subject SET code_index = (SELECT b FROM old) WHERE id = \(first);
                UPDATE subject SET code_index = (SELECT a FROM old) WHERE id = (SELECT max(id) FROM subject);
                """
            case .rewriteAnAuditEntry:
                "UPDATE audit_entry SET result = 'forged' WHERE seq = (SELECT min(seq) FROM audit_entry);"
            case .delayTheLastDueDay:
                "UPDATE subject SET next_due = '2027-01-02' WHERE id = (SELECT max(id) FROM subject);"
            }
        try sqlite(directory, sql)
    }

    func killedWriter(_ directory: TemporaryDirectory, afterMilliseconds milliseconds: Int) throws -> (CaseHandle?, Set<String>) {
        let outPath = directory.sub("helper-\(UUID().uuidString).out")
        let child = try Spawned.start(
            Binaries.path("anonreg-store-crash-helper"), [directory.path, "8"], stdout: outPath, stderr: directory.sub("helper.err"))
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
        // Only complete lines count: a torn last line was acknowledged but not fully reported.
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("case ") { handle = CaseHandle(String(line.dropFirst(5))) }
            if line.hasPrefix("ack ") { tokens.insert(String(line.dropFirst(4))) }
        }
        return (handle, tokens)
    }

    private func sqlite(_ directory: TemporaryDirectory, _ sql: String) throws {
        let result = try Binaries.runExecutable("/usr/bin/sqlite3", [directory.sub("registry.sqlite"), sql])
        guard result.status == 0 else { throw HarnessFailure("sqlite3 failed: \(result.stderr)") }
    }
}

struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
