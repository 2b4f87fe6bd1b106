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
    /// anywhere holds any byte string by which the subject can be recognised (its sid, code and
    /// handle indexes, MACs, wrapped key, sealed records and handles); and in the files, after
    /// the node's cleanup (VACUUM of the three tables) and a CHECKPOINT, they are nowhere but in
    /// the heap and index files of `subject`, `case_link` and `record` (dead tuples that VACUUM's
    /// compaction has not yet overwritten) and the WAL. The measurement is printed for
    /// docs/STORAGE.md.
    @Test func anErasureLeavesNoRowAndItsBytesOnlyInDeadTuplesAndTheWAL() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        defer { Task { await a.close() } }
        var receipts: [EnrolmentReceipt] = []
        for i in 0..<10 { receipts.append(try await PostgresNodes.enrol(a, consent: "consent \(i)")) }
        let victim = receipts[4]
        try await PostgresNodes.addCheckup(a, victim.caseHandle, clinic: PostgresNodes.clinicA, note: "note")
        // A record too large for its row: PostgreSQL stores its sealed bytes out of line, in
        // chunks of about 2 kB in the `record` table's TOAST table.
        try await PostgresNodes.addCheckup(
            a, victim.caseHandle, clinic: PostgresNodes.clinicA, note: String(repeating: "a long note ", count: 1_000))
        _ = try await a.link(code: victim.code, clinic: PostgresNodes.clinicB, record: NewRecord(kind: .link, plaintext: []), counters: [])
        let traces = try await a.storedTraces(case: victim.caseHandle, clinic: PostgresNodes.clinicA)
        #expect(traces.count >= 14)
        #expect(traces.contains { $0.count > 8 * PostgresErasureTests.window })
        let toast = try nodes.sql("SELECT pg_relation_filepath(reltoastrelid) FROM pg_class WHERE oid = 'record'::regclass;")
        let toastTable = try nodes.sql("SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'record'::regclass;")
        #expect(try nodes.sql("SELECT count(*) > 0 FROM \(toastTable);") == "t", "the long record is stored out of line")
        // A control: before the erasure, the long record's chunks are found in the TOAST table's
        // file by the windows (each chunk, about 2 kB, wholly holds at least one; a window across
        // two chunks is found in neither), so a record found nowhere afterwards is gone, not
        // missed.
        let long = try #require(traces.first { $0.count > 8 * PostgresErasureTests.window })
        let before = try nodes.filesHolding(any: PostgresErasureTests.windows(of: long))
        let inToast = before.filter { $0.contains(nodes.cluster.directory + "/data/" + toast) }.count
        #expect(inToast >= long.count / 2_000, "\(inToast) of \(before.count) windows in the TOAST table")
        try await a.erase(code: victim.code, counters: [])
        #expect(await a.retryPendingErasureCleanup() == false, "the cleanup VACUUM ran")

        // No row of any table holds any of them.
        let columns = try nodes.sql(
            """
            SELECT table_name || '.' || column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND data_type = 'bytea' ORDER BY 1;
            """
        ).split(separator: "\n")
        for column in columns {
            let parts = column.split(separator: ".")
            for trace in traces {
                let hex = trace.map { String(format: "%02x", $0) }.joined()
                let hits = try nodes.sql("SELECT count(*) FROM \(parts[0]) WHERE position(decode('\(hex)', 'hex') IN \(parts[1])) > 0;")
                #expect(hits == "0", "\(column) holds an erased value")
            }
        }
        // In the files: only the three tables' heap, TOAST and index files, and the WAL. A value
        // stored out of line is split into chunks, so a long trace is looked for by windows
        // (`windows`), each chunk holding at least one whole.
        let root = nodes.cluster.directory + "/data/"
        let allowed = Set(try nodes.sql(PostgresErasureRelations.filePaths).split(separator: "\n").map { root + $0 })
        var remaining: [String] = []
        let windows = traces.map(PostgresErasureTests.windows(of:))
        let found = try nodes.filesHolding(any: windows.flatMap { $0 })
        var next = 0
        for (i, trace) in traces.enumerated() {
            let files = Set(found[next..<(next + windows[i].count)].flatMap { $0 })
            next += windows[i].count
            let outside = files.filter { !allowed.contains($0) && !$0.hasPrefix(root + "pg_wal/") }
            #expect(outside.isEmpty, "trace \(i) outside the tables' files and the WAL: \(outside)")
            let kinds = files.map { $0.hasPrefix(root + "pg_wal/") ? "WAL" : $0 == root + toast ? "TOAST" : "table" }
            remaining.append("\(i) (\(trace.count) B): \(Set(kinds).sorted())")
        }
        print("erasure remains after cleanup and CHECKPOINT: \(remaining.joined(separator: "; "))")
    }

    /// The length of the pieces a long trace is looked for by.
    static let window = 64

    /// `trace` itself when short; else windows of `window` bytes every 997 bytes and at its end,
    /// so that every TOAST chunk (about 2,000 bytes, docs/STORAGE.md §Erasure on PostgreSQL)
    /// wholly holds at least one.
    static func windows(of trace: [UInt8]) -> [[UInt8]] {
        guard trace.count > 4 * window else { return [trace] }
        var windows = stride(from: 0, to: trace.count - window, by: 997).map { Array(trace[$0..<($0 + window)]) }
        windows.append(Array(trace.suffix(window)))
        return windows
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

    /// The cleanup VACUUM after an erasure cannot take a table that another session holds
    /// (another node's cleanup, DDL) within its lock wait: the cleanup must then stay pending and
    /// run again, not count as done while the erased subject's dead tuples are still in that
    /// table's pages. Fails when such a table is skipped and the cleanup still reported done
    /// (`VACUUM (SKIP_LOCKED)`).
    @Test func aCleanupThatSkippedATableStaysPendingAndRunsAgain() async throws {
        let nodes = try PostgresNodes()
        let a = try await nodes.node()
        defer { Task { await a.close() } }
        let receipt = try await PostgresNodes.enrol(a)
        let holder = try nodes.cluster.session(
            "SET application_name = 'vacuum-holder'; BEGIN; LOCK TABLE record IN SHARE UPDATE EXCLUSIVE MODE; SELECT pg_sleep(600);")
        defer {
            holder.signal(SIGKILL)
            holder.wait()
        }
        try await PostgresGroupCommitTests.waitUntil(
            nodes, "SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'record' AND l.granted")
        try await a.erase(code: receipt.code, counters: [])
        #expect(await a.retryPendingErasureCleanup(), "a VACUUM that could not take `record` must leave the cleanup pending")
        try nodes.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'vacuum-holder'")
        #expect(await a.retryPendingErasureCleanup() == false, "once the table is free, the cleanup completes")
        #expect(await a.retryPendingErasureCleanup() == false, "and has nothing left to do")

        // A table held for 7 s, within the VACUUM's lock wait (10 s) but past the wait for a
        // connection (5 s): the VACUUM completes once it is free, and the cleanup is done. Fails
        // when the wait for a connection also bounds the VACUUM.
        let second = try await PostgresNodes.enrol(a, consent: "second")
        let brief = try nodes.cluster.session(
            "SET application_name = 'brief-holder'; BEGIN; LOCK TABLE record IN SHARE UPDATE EXCLUSIVE MODE; SELECT pg_sleep(7); COMMIT;")
        defer { brief.wait() }
        try await PostgresGroupCommitTests.waitUntil(
            nodes, "SELECT count(*) = 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'record' AND l.granted")
        try await a.erase(code: second.code, counters: [])
        #expect(await a.retryPendingErasureCleanup() == false, "a VACUUM that waited 7 s for `record` and then ran is done")
    }
}
