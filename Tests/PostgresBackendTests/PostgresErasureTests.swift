import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import RegistryProtocol
import Testing

/// Erasure on PostgreSQL with several nodes (docs/STORAGE.md §Erasure on PostgreSQL): final on
/// every node at once, and never undone by restoring a dump taken before it.
@Suite(.timeLimit(.minutes(10)))
struct PostgresErasureTests {
    @Test func anErasureThroughOneNodeIsFinalOnTheOther() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        let b = try await nodes.node()
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }
        let receipt = try await PostgresNodes.enrol(a)
        let handleB = try await b.link(
            code: receipt.code, clinic: PostgresNodes.clinicB, record: NewRecord(kind: .link, plaintext: []), counters: [])
        let reference = try await a.subject(case: receipt.caseHandle, clinic: PostgresNodes.clinicA).auditReference
        let recorder = AuditRecorder(.init(actor: "clinic clinic-b", action: "withdraw"))
        try await AuditRecorder.$current.withValue(recorder) {
            try await b.erase(case: handleB, clinic: PostgresNodes.clinicB, counters: [])
        }
        #expect(recorder.appendedWithEffect)

        await #expect(throws: StorageError.caseNotFound) { try await a.subject(case: receipt.caseHandle, clinic: PostgresNodes.clinicA) }
        await #expect(throws: StorageError.codeNotFound) { try await a.subject(code: receipt.code) }
        #expect(try await a.casesDue(clinic: PostgresNodes.clinicA, before: Day("2100-01-01")!).isEmpty)
        // No entry links back to the subject any more; the chain still verifies.
        #expect(try await a.auditRecords(subjectReference: reference).isEmpty)
        #expect(try await a.verifyAudit().ok)
        #expect(try nodes.sql("SELECT count(*) FROM subject; SELECT count(*) FROM record; SELECT count(*) FROM case_link;") == "0\n0\n0")
        // A second erasure of the same subject finds nothing.
        await #expect(throws: StorageError.codeNotFound) { try await a.erase(code: receipt.code, counters: []) }
    }

    /// A database restored from a dump taken before an erasure: the node that made the erasure
    /// is down, and the restored subject must still not come back. The other node took the
    /// erasure into its own ledger file when it synchronised (every few minutes in the daemon),
    /// so it refuses the subject alone and puts the erasure back into the database's list;
    /// the erasing node, started later, finds its list complete. Fails without the merge from
    /// the database's list into each node's file.
    @Test func aRestoredDumpNeverResurrectsAnErasure() async throws {
        let nodes = try PostgresNodes()
        let (hostA, keysA) = try nodes.copyOfTheKeys()
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        _ = (hostA, hostB)
        var a = try await nodes.node(keys: keysA)
        var b = try await nodes.node(keys: keysB)
        let erased = try await PostgresNodes.enrol(a, consent: "erased later")
        let kept = try await PostgresNodes.enrol(a, consent: "kept")
        let dump = try nodes.cluster.dump()

        try await b.erase(code: erased.code, counters: [])
        #expect(try await a.synchroniseErasureLedger() == (file: 1, database: 0))
        await a.close()
        await b.close()

        try nodes.cluster.restore(dump)
        #expect(try nodes.sql("SELECT count(*) FROM subject; SELECT count(*) FROM erasure_ledger_entry;") == "2\n0")

        a = try await nodes.node(keys: keysA)
        #expect(try await a.synchroniseErasureLedger() == (file: 0, database: 1))
        await #expect(throws: StorageError.integrity(what: Self.ledgerRefusal)) { try await a.subject(code: erased.code) }
        await #expect(throws: StorageError.integrity(what: Self.ledgerRefusal)) {
            try await a.subject(case: erased.caseHandle, clinic: PostgresNodes.clinicA)
        }
        #expect(try await a.subject(code: kept.code).records.count == 2)

        b = try await nodes.node(keys: keysB)
        #expect(try await b.synchroniseErasureLedger() == (file: 0, database: 0))
        await #expect(throws: StorageError.integrity(what: Self.ledgerRefusal)) { try await b.subject(code: erased.code) }
        await a.close()
        await b.close()
    }

    /// A node's ledger file that was lost gets every erasure back from the database, its own
    /// and the other nodes'.
    @Test func aLostLedgerFileIsRefilledFromTheDatabase() async throws {
        let nodes = try PostgresNodes()
        let (hostA, keysA) = try nodes.copyOfTheKeys()
        let (hostB, keysB) = try nodes.copyOfTheKeys()
        _ = (hostA, hostB)
        let a = try await nodes.node(keys: keysA)
        let b = try await nodes.node(keys: keysB)
        defer {
            Task {
                await a.close()
                await b.close()
            }
        }
        let first = try await PostgresNodes.enrol(a, consent: "one")
        let second = try await PostgresNodes.enrol(a, consent: "two")
        let sidsBefore = try nodes.sql("SELECT encode(sid, 'hex') FROM subject ORDER BY id;").split(separator: "\n")
        try await a.erase(code: first.code, counters: [])
        try await b.erase(code: second.code, counters: [])

        let ledgerPath = keysA + "/" + ErasureLedger.fileName
        try FileManager.default.removeItem(atPath: ledgerPath)
        #expect(try await a.synchroniseErasureLedger() == (file: 2, database: 0))
        let keyring = try Keyring.load(from: KeyringSource(directory: keysA))
        let ledger = ErasureLedger(directory: keysA, keyring: keyring)
        let expected = try sidsBefore.map { try ledger.reference(sid: Array(Self.hex(String($0)))) }
        #expect(try ledger.references() == Set(expected))
    }

    /// What an erasure leaves on PostgreSQL (docs/STORAGE.md §Erasure on PostgreSQL): no row
    /// anywhere holds the subject's sid, wrapped key or sealed bytes; and in the files, after
    /// VACUUM and CHECKPOINT, its wrapped key and sealed record remain only in the dead tuples of
    /// the subject and record tables' own heap files and in the WAL, nowhere else (no index, no
    /// other table). PostgreSQL does not zero dead tuples, so those remain until the pages are
    /// reused and the WAL segments recycled: the window lasts until the KEK version that wraps
    /// the key is destroyed. The measurement is printed for docs/STORAGE.md.
    @Test func anErasureLeavesNoRowAndItsBytesOnlyInTheDeadTuplesAndTheWAL() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        defer { Task { await a.close() } }
        var receipts: [EnrolmentReceipt] = []
        for i in 0..<10 { receipts.append(try await PostgresNodes.enrol(a, consent: "consent \(i)")) }
        let victim = receipts[4]
        try await PostgresNodes.addCheckup(a, victim.caseHandle, clinic: PostgresNodes.clinicA, note: "note")
        let id = try nodes.sql("SELECT min(id) + 4 FROM subject;")
        let values = try nodes.sql(
            """
            SELECT encode(sid, 'hex') FROM subject WHERE id = \(id);
            SELECT encode(wrapped_dek, 'hex') FROM subject WHERE id = \(id);
            SELECT encode(sealed, 'hex') FROM record WHERE subject_id = \(id) ORDER BY id DESC LIMIT 1;
            SELECT encode(summary, 'hex') FROM subject WHERE id = \(id);
            """
        ).split(separator: "\n").map(String.init)
        #expect(values.count == 4)
        let (sid, wrapped, sealed, summary) = (values[0], values[1], values[2], values[3])
        try await a.erase(code: victim.code, counters: [])
        try nodes.sql("VACUUM subject; VACUUM record; VACUUM case_link; VACUUM audit_subject;")

        // No row of any table holds any of them.
        let tables = try nodes.sql(
            """
            SELECT table_name || '.' || column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND data_type = 'bytea' ORDER BY 1;
            """
        ).split(separator: "\n")
        for column in tables {
            let parts = column.split(separator: ".")
            for value in [sid, wrapped, sealed, summary] {
                let hits = try nodes.sql(
                    "SELECT count(*) FROM \(parts[0]) WHERE position(decode('\(value)', 'hex') IN \(parts[1])) > 0;")
                #expect(hits == "0", "\(column) holds an erased value")
            }
        }
        // In the files: only the two tables' heap files and the WAL.
        let heap = Set(
            try nodes.sql("SELECT pg_relation_filepath('subject'); SELECT pg_relation_filepath('record');").split(separator: "\n").map {
                nodes.cluster.directory + "/data/" + $0
            })
        for (name, value, table) in [("wrapped key", wrapped, "subject"), ("sealed record", sealed, "record")] {
            let files = try nodes.filesHoldingBytes(Self.hex(value))
            let outside = files.filter { !heap.contains($0) && !$0.contains("/pg_wal/") }
            #expect(outside.isEmpty, "\(name) outside its heap file and the WAL: \(outside)")
            print(
                "erasure remains: \(name) after VACUUM and CHECKPOINT in \(files.map { $0.replacingOccurrences(of: nodes.cluster.directory + "/data/", with: "") }) (\(table))"
            )
        }
    }

    static let ledgerRefusal =
        "subject named in the erasure ledger (an erasure that did not complete, or rows put back after an erasure)"

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }
}
