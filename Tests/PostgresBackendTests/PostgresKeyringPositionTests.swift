import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import RegistryProtocol
import Testing

/// Keys on several nodes (docs/STORAGE.md §Keys on several nodes): one node rotates the KEK; a
/// node whose keyring lacks the new version refuses writes (`keyring_behind`) but serves reads
/// and erasures, and writes again once the version is installed; a node that holds the new
/// version but still calls the old one primary wraps new keys under the registry's primary.
@Suite(.timeLimit(.minutes(10)))
struct PostgresKeyringPositionTests {
    @Test func aNodeBehindTheRegistrysPrimaryRefusesWritesUntilItIsInstalled() async throws {
        let nodes = try PostgresNodes()
        let (hostA, keysA) = try nodes.copyOfTheKeys()
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        _ = (hostA, hostB)
        let custodyA = KeyCustody(try Keyring.load(from: KeyringSource(directory: keysA)))
        let custodyB = KeyCustody(try Keyring.load(from: KeyringSource(directory: keysB)))
        let a = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: custodyA)
        let b = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: custodyB)
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }
        let before = try await PostgresNodes.enrol(b, consent: "before")
        let doomed = try await PostgresNodes.enrol(b, consent: "to be withdrawn")

        // Node A rotates; its next enrolment records version 2 as the registry's primary.
        custodyA.replace(try custodyA.current.rotatingKEK())
        let v2 = custodyA.current.primaryKEK.version
        #expect(v2 == 2)
        _ = try await PostgresNodes.enrol(a, consent: "under v2")
        #expect(try nodes.sql("SELECT version FROM kek_primary;") == "2")

        // Node B lacks version 2: every write is refused, and nothing is written.
        let counts = "SELECT count(*) FROM subject; SELECT count(*) FROM record; SELECT count(*) FROM audit_entry;"
        let unchanged = try nodes.sql(counts)
        await #expect(throws: StorageError.keyringBehind(version: 2)) { try await PostgresNodes.enrol(b, consent: "refused") }
        await #expect(throws: StorageError.keyringBehind(version: 2)) {
            try await PostgresNodes.addCheckup(b, before.caseHandle, clinic: PostgresNodes.clinicA, note: "refused")
        }
        await #expect(throws: StorageError.keyringBehind(version: 2)) {
            _ = try await b.link(
                code: before.code, clinic: PostgresNodes.clinicB, record: NewRecord(kind: .link, plaintext: []), counters: [])
        }
        await #expect(throws: StorageError.keyringBehind(version: 2)) { try await b.rewrapBatch(limit: 10) }
        #expect(try nodes.sql(counts) == unchanged)
        // Reads are served, and a withdrawal is never held up.
        #expect(try await b.subject(case: before.caseHandle, clinic: PostgresNodes.clinicA).records.count == 2)
        try await b.erase(code: doomed.code, counters: [])

        // Installed on B (a copy of A's keys directory, reloaded): B writes again.
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", keysA + "/kek-2.key", keysA + "/keyring.json", keysB + "/"])
        #expect(copy.status == 0, "\(copy.stderr)")
        custodyB.replace(try Keyring.load(from: KeyringSource(directory: keysB)))
        try await PostgresNodes.addCheckup(b, before.caseHandle, clinic: PostgresNodes.clinicA, note: "after install")
        _ = try await PostgresNodes.enrol(b, consent: "under v2 on b")
        #expect(try await b.kekUsage()[2] == 2)
    }

    /// A node that holds version 2 but still calls version 1 primary (the new key was installed
    /// before the rotation reached it) wraps new keys under the registry's primary, version 2.
    /// Fails if a node wrapped under its own primary once the registry's is newer.
    @Test func aNodeThatHoldsTheNewVersionWrapsUnderTheRegistrysPrimary() async throws {
        let nodes = try PostgresNodes()
        let (hostA, keysA) = try nodes.copyOfTheKeys()
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        _ = (hostA, hostB)
        let custodyA = KeyCustody(try Keyring.load(from: KeyringSource(directory: keysA)))
        let a = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: custodyA)
        defer { Task { await a.close() } }
        custodyA.replace(try custodyA.current.rotatingKEK())
        _ = try await PostgresNodes.enrol(a, consent: "records v2")
        // B: A's rotated keyring, with version 1 still primary and version 2 only active.
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", keysA + "/kek-2.key", keysB + "/"])
        #expect(copy.status == 0, "\(copy.stderr)")
        var manifest = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: keysA + "/keyring.json"))) as? [String: Any])
        manifest["keks"] = try #require(manifest["keks"] as? [[String: Any]]).map { entry in
            var entry = entry
            entry["status"] = (entry["version"] as? Int) == 1 ? "primary" : "active"
            return entry
        }
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: keysB + "/keyring.json"))
        let keyringB = try Keyring.load(from: KeyringSource(directory: keysB))
        #expect(keyringB.primaryKEK.version == 1)
        let b = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: KeyCustody(keyringB))
        defer { Task { await b.close() } }
        _ = try await PostgresNodes.enrol(b, consent: "wrapped by b")
        #expect(try await b.kekUsage() == [2: 2])
    }
}
