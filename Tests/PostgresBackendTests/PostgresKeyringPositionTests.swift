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
        let pair = try await KeyedNodes.open()
        defer { Task { await pair.close() } }
        let (nodes, keysA, keysB, custodyA, custodyB, a, b) = (
            pair.nodes, pair.keysA, pair.keysB, pair.custodyA, pair.custodyB, pair.a, pair.b
        )
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

/// The rollout docs/OPERATIONS.md gives (§PostgreSQL and several nodes, "KEK rotation"): stage on
/// one node, copy to every node, then rotate on one; and the mistake it guards against, a second
/// node rotating on its own to a different key of the same number.
@Suite(.timeLimit(.minutes(10)))
struct PostgresStagedKEKTests {
    /// Fails if a staged version did not count as held: B would refuse every write from A's
    /// rotation until its keys were copied again.
    @Test func aVersionStagedOnEveryNodeBeforeTheRotationIsNeverBehind() async throws {
        let pair = try await KeyedNodes.open()
        defer { Task { await pair.close() } }
        let (nodes, keysA, keysB, custodyA, custodyB, a, b) = (
            pair.nodes, pair.keysA, pair.keysB, pair.custodyA, pair.custodyB, pair.a, pair.b
        )
        // Staged on A, copied to B (keyring.json and kek-2.key), taken up there (as on SIGHUP):
        // nothing wraps under it yet on either node.
        custodyA.replace(try custodyA.current.stagingKEK())
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", keysA + "/kek-2.key", keysA + "/keyring.json", keysB + "/"])
        #expect(copy.status == 0, "\(copy.stderr)")
        custodyB.replace(try custodyB.current.reloadingKEKs())
        #expect(custodyB.current.manifest.stagedVersion == 2)
        let early = try await PostgresNodes.enrol(b, consent: "before the rotation")
        #expect(try await a.kekUsage() == [1: 1])

        // A rotates (the staged key becomes primary) and records version 2 with its key check.
        custodyA.replace(try custodyA.current.rotatingKEK())
        _ = try await PostgresNodes.enrol(a, consent: "under v2 on a")
        #expect(
            try nodes.sql("SELECT p.version, c.key_check FROM kek_primary p JOIN kek_check c USING (version);")
                == "2|\(try #require(custodyA.current.manifest.kekCheck(version: 2)))")

        // B still calls version 1 primary and version 2 staged: it writes, wrapping under 2.
        #expect(custodyB.current.primaryKEK.version == 1)
        _ = try await PostgresNodes.enrol(b, consent: "under v2 on b")
        try await PostgresNodes.addCheckup(b, early.caseHandle, clinic: PostgresNodes.clinicA, note: "b after the rotation")
        #expect(try await b.rewrapBatch(limit: 10).remaining == 0)
        #expect(try await b.kekUsage() == [2: 3])
        // Each node opens what the other wrapped.
        #expect(try await a.subject(case: early.caseHandle, clinic: PostgresNodes.clinicA).records.count == 3)
    }

    /// Fails without the key check: B, having rotated on its own, finds the registry's version
    /// number equal to its own and wraps under its key 2, which A does not hold, so A can no
    /// longer open those subjects. Then B's sweep must not erase A's subjects, which its key 2
    /// cannot open, and B rotating again must not make its version 3 the registry's primary.
    @Test func aNodeThatRotatedOnItsOwnNeitherWrapsNorErasesNorTakesOver() async throws {
        let pair = try await KeyedNodes.open()
        defer { Task { await pair.close() } }
        let (nodes, keysA, keysB, custodyA, custodyB, a, b) = (
            pair.nodes, pair.keysA, pair.keysB, pair.custodyA, pair.custodyB, pair.a, pair.b
        )
        let before = try await PostgresNodes.enrol(b, consent: "before")
        custodyA.replace(try custodyA.current.rotatingKEK())
        let underA2 = try await PostgresNodes.enrol(a, consent: "under a's v2")
        // B rotates too, without A's keys: another key called version 2.
        custodyB.replace(try custodyB.current.rotatingKEK())
        #expect(custodyB.current.primaryKEK.version == 2)
        #expect(custodyB.current.manifest.kekCheck(version: 2) != custodyA.current.manifest.kekCheck(version: 2))

        let counts = """
            SELECT count(*) FROM subject; SELECT count(*) FROM record; SELECT count(*) FROM audit_entry;
            SELECT version FROM kek_primary; SELECT version, key_check FROM kek_check ORDER BY version;
            """
        let unchanged = try nodes.sql(counts)
        await #expect(throws: StorageError.keyringBehind(version: 2)) { try await PostgresNodes.enrol(b, consent: "refused") }
        await #expect(throws: StorageError.keyringBehind(version: 2)) { try await b.rewrapBatch(limit: 10) }
        await #expect(throws: StorageError.keyringBehind(version: 2)) {
            try await PostgresNodes.addCheckup(b, before.caseHandle, clinic: PostgresNodes.clinicA, note: "refused while behind")
        }
        // B's sweep reviews A's subject: its key 2 fails to open the data key, and that is B's
        // key, not the subject: left as it is, never erased.
        let due = try await b.subjectsToReview(onOrBefore: Day("2029-12-31")!, limit: 100)
        #expect(due.count == 2)
        for subject in due {
            do {
                let opened = try await b.openForReview(subject)
                if case .erasedIntegrity = opened { Issue.record("B's sweep erased a subject its key cannot open") }
            } catch {
                #expect(error == .keyringBehind(version: 2))
            }
        }
        // B may not write a key of its own under a number the registry knows (`keys stage` and
        // `keys rotate` ask first); a number past it is B's to write.
        await #expect(throws: StorageError.keyringBehind(version: 2)) { try await b.refuseKnownKEKVersion(2) }
        try await b.refuseKnownKEKVersion(3)
        // Rotating again on B (its own version 3) records nothing past the version it diverges on.
        custodyB.replace(try custodyB.current.rotatingKEK())
        await #expect(throws: StorageError.keyringBehind(version: 2)) { try await PostgresNodes.enrol(b, consent: "refused again") }
        #expect(try nodes.sql(counts) == unchanged)
        #expect(try await a.subject(case: underA2.caseHandle, clinic: PostgresNodes.clinicA).records.count == 2)

        // A's key 2 and keyring.json installed on B, over its own (and its version 3 removed): B
        // writes again, under the registry's key.
        #expect(unlink(keysB + "/kek-3.key") == 0)
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", keysA + "/kek-2.key", keysA + "/keyring.json", keysB + "/"])
        #expect(copy.status == 0, "\(copy.stderr)")
        custodyB.replace(try Keyring.load(from: KeyringSource(directory: keysB)))
        #expect(try await b.subject(case: underA2.caseHandle, clinic: PostgresNodes.clinicA).records.count == 2)
        _ = try await PostgresNodes.enrol(b, consent: "under a's v2 on b")
        #expect(try await a.kekUsage() == [1: 1, 2: 2])
        #expect(try await a.rewrapBatch(limit: 10).remaining == 0)
    }

    /// A version wrapped under before migration pg6-kek-checks has no check: the first node
    /// that wraps under it records its own, and a node with another key of that number (a
    /// coherent swap of kek-1.key and its check in keyring.json) is refused from then on.
    @Test func aVersionWithoutACheckGetsOneAndThenHoldsOthersToIt() async throws {
        let nodes = try PostgresNodes()
        let (hostA, keysA) = try nodes.copyOfTheKeys()
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        _ = (hostA, hostB)
        let custodyA = KeyCustody(try Keyring.load(from: KeyringSource(directory: keysA)))
        let a = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: custodyA)
        defer { Task { await a.close() } }
        _ = try await PostgresNodes.enrol(a, consent: "records v1")
        _ = try nodes.sql("DELETE FROM kek_check;")
        _ = try await PostgresNodes.enrol(a, consent: "fills the check")
        #expect(
            try nodes.sql("SELECT version, key_check FROM kek_check;")
                == "1|\(try #require(custodyA.current.manifest.kekCheck(version: 1)))")
        // The schema refuses a value that is not a key check.
        #expect(throws: (any Error).self) { try nodes.sql("UPDATE kek_check SET key_check = 'not hex';") }

        // B: the same keyring but another kek-1.key, with keyring.json's check to match.
        let other = TemporaryDirectory()
        let otherKeyring = try Keyring.create(in: other.sub("keys"))
        let path = keysB + "/keyring.json"
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        var checks = try #require(manifest["keyChecks"] as? [String: String])
        checks["kek-1.key"] = otherKeyring.manifest.kekCheck(version: 1)
        manifest["keyChecks"] = checks
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path))
        let copy = try Binaries.runExecutable("/bin/cp", ["-a", other.sub("keys/kek-1.key"), keysB + "/"])
        #expect(copy.status == 0)
        let b = try await PostgresStore.open(
            PostgresBackendTests.config(nodes.cluster), keys: KeyCustody(try Keyring.load(from: KeyringSource(directory: keysB))))
        defer { Task { await b.close() } }
        let unchanged = try nodes.sql("SELECT count(*) FROM subject;")
        await #expect(throws: StorageError.keyringBehind(version: 1)) { try await PostgresNodes.enrol(b, consent: "refused") }
        #expect(try nodes.sql("SELECT count(*) FROM subject;") == unchanged)
    }
}

/// Two nodes of one registry on a throwaway cluster: each a host of its own with a copy of the
/// keys directory (`keysA`, `keysB`), a custody loaded from it, and a store.
struct KeyedNodes {
    let nodes: PostgresNodes
    let hosts: [TemporaryDirectory]
    let keysA: String
    let keysB: String
    let custodyA: KeyCustody
    let custodyB: KeyCustody
    let a: PostgresStore
    let b: PostgresStore

    static func open() async throws -> KeyedNodes {
        let nodes = try PostgresNodes()
        let (hostA, keysA) = try nodes.copyOfTheKeys()
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        let custodyA = KeyCustody(try Keyring.load(from: KeyringSource(directory: keysA)))
        let custodyB = KeyCustody(try Keyring.load(from: KeyringSource(directory: keysB)))
        let a = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: custodyA)
        let b = try await PostgresStore.open(PostgresBackendTests.config(nodes.cluster), keys: custodyB)
        return KeyedNodes(
            nodes: nodes, hosts: [hostA, hostB], keysA: keysA, keysB: keysB, custodyA: custodyA, custodyB: custodyB, a: a, b: b)
    }

    func close() async {
        await a.close()
        await b.close()
    }
}
