import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring

/// The audit log in SQLite: append (chained), checkpoint (signed), read, verify, prune.
extension SQLiteRegistryStore {
    public func appendAudit(_ event: AuditEvent) async throws(StorageError) {
        let keyring = self.keyring
        let every = auditCheckpointEvery
        let at = Self.timestamp()
        try await write { db in
            try Self.appendChained(db, event: event, at: at, checkpointEvery: every, keyring: keyring)
        }
    }

    /// Appends the request's entry inside the write that has the effect, so that the effect and
    /// its entry commit together or not at all (docs/CRYPTO.md §Audit). Does nothing outside a
    /// request, or if the request's entry is already written.
    static func auditEffect(_ db: Database, recorder: AuditRecorder?, checkpointEvery: Int, keyring: Keyring) throws {
        guard let recorder, recorder.actionToAppend != nil, let event = recorder.event(result: "ok") else { return }
        try appendChained(db, event: event, at: timestamp(), checkpointEvery: checkpointEvery, keyring: keyring)
        recorder.markAppended()
    }

    /// Appends one entry and signs a checkpoint every `checkpointEvery` entries.
    static func appendChained(_ db: Database, event: AuditEvent, at: String, checkpointEvery: Int, keyring: Keyring) throws {
        let (seq, entryHash) = try appendEntry(db, event: event, at: at)
        if checkpointEvery > 0, seq % Int64(checkpointEvery) == 0 {
            try insertCheckpoint(db, seq: seq, hash: entryHash, keyring: keyring, interval: checkpointEvery)
        }
    }

    static func appendEntry(_ db: Database, event: AuditEvent, at: String) throws -> (Int64, [UInt8]) {
        let last = try db.fetchOneCached("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
        let seq: Int64
        let previous: [UInt8]
        if let last {
            seq = (last[0] as Int64) + 1
            previous = Array(last[1] as Data)
        } else {
            seq = try Self.prunedHead(db) + 1
            previous = try Self.anchorHash(db, before: seq)
        }
        // The chain holds only a salted commitment to the subject reference; the reference and
        // salt are kept beside it while the subject exists (docs/CRYPTO.md §Audit).
        let commitment = try event.subjectReference.map { (reference) throws(StorageError) in
            try SubjectKeys.auditCommitment(reference: reference)
        }
        let canonical = AuditChain.canonical(
            seq: seq, at: at, actor: event.actor, action: event.action, result: event.result,
            subjectCommit: commitment?.value)
        let hash: [UInt8]
        do { hash = try AuditChain.hash(previous: previous, canonical: canonical) } catch {
            throw StorageError.database(reason: "could not hash an audit entry")
        }
        try db.executeCached(
            """
            INSERT INTO audit_entry (seq, at, actor, action, result, subject_commit, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                seq, at, event.actor, event.action, event.result, commitment.map { Data($0.value) },
                Data(previous), Data(hash),
            ])
        // A read's entry is appended after the read, in a transaction of its own: if the
        // subject was erased in between, the entry keeps its commitment but no link, like any
        // entry written after an erasure.
        if let reference = event.subjectReference, let commitment, event.linked, try subjectExists(db, key: event.subjectKey) {
            try db.executeCached(
                "INSERT INTO audit_subject (seq, subject_ref, salt) VALUES (?, ?, ?)",
                [seq, Data(reference), Data(commitment.salt)])
        }
        return (seq, hash)
    }

    /// Appends the `audit-restore` entry to a payload being restored (docs/CRYPTO.md §Audit,
    /// "Restores") and signs a checkpoint at it. The entry continues the payload's chain but is
    /// numbered after `highestIssued` (every number the registry can have given out before, from
    /// the anchor), so exported entries are never numbered twice.
    static func appendRestoreEntry(
        _ db: Database, keyring: Keyring, createdAt: String, actor: String, interval: Int, highestIssued: Int64, reErased: Int,
        remaining: Int
    ) throws -> BackupArchive.RestoreOutcome {
        let last = try db.fetchOneCached("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1")
        let ended: Int64
        let previous: [UInt8]
        if let last {
            ended = last[0]
            previous = Array(last[1] as Data)
        } else {
            ended = try prunedHead(db)
            previous = try anchorHash(db, before: ended + 1)
        }
        // Numbering jumps to the next multiple of `AuditChain.restoreStep` above every number the
        // registry can have issued: an anchor kept with an older keyring backup may be behind the
        // entries issued since, and the jump keeps them apart from any count of entries short of
        // a billion (docs/CRYPTO.md §Audit, "Restores").
        let step = AuditChain.restoreStep
        let continuesAfter = (max(ended, highestIssued) / step + 1) * step
        let seq = continuesAfter + 1
        let at = timestamp()
        let result = AuditChain.restoreResult(
            createdAt: createdAt, ended: ended, head: previous, reErased: reErased, continuesAfter: continuesAfter)
        let canonical = AuditChain.canonical(
            seq: seq, at: at, actor: actor, action: AuditChain.restoreAction, result: result, subjectCommit: nil)
        let hash: [UInt8]
        do { hash = try AuditChain.hash(previous: previous, canonical: canonical) } catch {
            throw StorageError.database(reason: "could not hash an audit entry")
        }
        try db.execute(
            sql: """
                INSERT INTO audit_entry (seq, at, actor, action, result, subject_commit, prev_hash, hash) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)
                """, arguments: [seq, at, actor, AuditChain.restoreAction, result, Data(previous), Data(hash)])
        try insertCheckpoint(db, seq: seq, hash: hash, keyring: keyring, interval: interval)
        guard let checkpoint = try AuditLogReader.newestCheckpoint(db), checkpoint.seq == seq else {
            throw StorageError.database(reason: "the restore's audit checkpoint was not written")
        }
        return BackupArchive.RestoreOutcome(
            erased: reErased, remaining: remaining, restoreSeq: seq, continuesAfter: continuesAfter,
            checkpoint: checkpoint)
    }

    /// Whether the subject with store key (sid) `key` still exists; true when no key was given.
    static func subjectExists(_ db: Database, key: [UInt8]?) throws -> Bool {
        guard let key else { return true }
        return try db.fetchOneCached("SELECT 1 FROM subject WHERE sid = ?", [Data(key)]) != nil
    }

    /// Erasure: forgets which entries were about the subject. What stays on the chain is a
    /// commitment whose salt is gone.
    static func unlinkAudit(_ db: Database, reference: [UInt8]) throws {
        try db.execute(sql: "DELETE FROM audit_subject WHERE subject_ref = ?", arguments: [Data(reference)])
    }

    /// After pruning, the log continues from the latest checkpoint at or before the head.
    static func prunedHead(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_checkpoint") ?? 0
    }

    static func anchorHash(_ db: Database, before seq: Int64) throws -> [UInt8] {
        guard seq > 1 else { return AuditChain.genesis }
        guard let data = try Data.fetchOne(db, sql: "SELECT hash FROM audit_checkpoint WHERE seq = ?", arguments: [seq - 1]) else {
            throw StorageError.database(reason: "the audit log has no anchor for entry \(seq)")
        }
        return Array(data)
    }

    /// Signs a version-2 checkpoint at `seq` (docs/CRYPTO.md §Audit): it names the checkpoint
    /// before it and the interval, so none can be deleted unnoticed. The anchor beside the keyring
    /// is replaced once the transaction committed (`refreshAuditAnchor`).
    static func insertCheckpoint(_ db: Database, seq: Int64, hash: [UInt8], keyring: Keyring, interval: Int) throws {
        let at = timestamp()
        let previous = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_checkpoint WHERE seq < ?", arguments: [seq]) ?? 0
        let checkpoint = AuditChain.Checkpoint(
            seq: seq, hash: hash, at: at, signature: [], format: 2, previous: previous, interval: interval)
        let signature: [UInt8]
        do { signature = try keyring.auditSigningKey.sign(checkpoint.message) } catch {
            throw StorageError.database(reason: "could not sign an audit checkpoint")
        }
        try db.execute(
            sql: """
                INSERT OR IGNORE INTO audit_checkpoint (seq, hash, at, signature, format, previous, interval) VALUES (?, ?, ?, ?, 2, ?, ?)
                """, arguments: [seq, Data(hash), at, Data(signature), previous, interval])
        AuditAnchorTracker.checkpointsSigned.add(1, ordering: .relaxed)
    }

    /// Signs the head of the log if entries were added since the last checkpoint. Called every
    /// few minutes and on shutdown. Returns the checkpointed sequence number, if any.
    @discardableResult
    public func checkpointAudit() async throws(StorageError) -> Int64? {
        let keyring = self.keyring
        let interval = auditCheckpointEvery
        return try await write { db in
            guard let head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1") else { return nil }
            let seq: Int64 = head[0]
            let signed = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_checkpoint") ?? 0
            guard seq > signed else { return nil }
            try Self.insertCheckpoint(db, seq: seq, hash: Array(head[1] as Data), keyring: keyring, interval: interval)
            return seq
        }
    }

    /// The result text of the newest entry with `action`, if any (e.g. the policies last recorded).
    public func lastAuditResult(action: String) async throws(StorageError) -> String? {
        try await read { db in
            try String.fetchOne(db, sql: "SELECT result FROM audit_entry WHERE action = ? ORDER BY seq DESC LIMIT 1", arguments: [action])
        }
    }

    public func auditRecords(subjectReference: [UInt8]) async throws(StorageError) -> [AuditRecord] {
        try await read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT e.seq, e.at, e.actor, e.action, e.result FROM audit_subject s JOIN audit_entry e ON e.seq = s.seq
                    WHERE s.subject_ref = ? ORDER BY e.seq
                    """, arguments: [Data(subjectReference)]
            ).map {
                AuditRecord(seq: $0[0], at: $0[1], actor: $0[2], action: $0[3], result: $0[4])
            }
        }
    }

    /// Entries with `seq > after`, oldest first, at most `limit` (for export).
    public func auditEntries(after: Int64, limit: Int) async throws(StorageError) -> [AuditChain.Entry] {
        try await read { db in try AuditLogReader.entries(db, after: after, limit: limit) }
    }

    /// Checkpoints with `after < seq <= through` (for export).
    public func auditCheckpoints(after: Int64, through: Int64) async throws(StorageError) -> [AuditChain.Checkpoint] {
        try await read { db in try AuditLogReader.checkpoints(db, after: after, through: through) }
    }

    /// Verifies the whole log against the keyring's audit public key, the checkpoint interval
    /// and the anchor beside the keyring.
    public func verifyAudit() async throws(StorageError) -> AuditChain.Report {
        let publicKey = keyring.auditSigningKey.publicKey
        let interval = auditCheckpointEvery
        let anchor = try Self.readAnchor(directory: keyring.source.directory)
        return try await read { db in try AuditLogReader.verify(db, publicKey: publicKey, interval: interval, anchor: anchor) }
    }

    /// Drops entries older than `cutoff` (an ISO 8601 UTC time), keeping the chain verifiable:
    /// only entries up to the latest checkpoint older than the cutoff go, and that checkpoint stays
    /// as the anchor. Returns how many entries were removed.
    public func pruneAudit(olderThan cutoff: String) async throws(StorageError) -> Int {
        try await write { db in
            guard let anchor = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_checkpoint WHERE at < ?", arguments: [cutoff]) else {
                return 0
            }
            try db.execute(sql: "DELETE FROM audit_entry WHERE seq <= ?", arguments: [anchor])
            let removed = db.changesCount
            try db.execute(sql: "DELETE FROM audit_checkpoint WHERE seq < ?", arguments: [anchor])
            // The pruning itself is on the chain, so verify can tell it from a deleted prefix.
            _ = try Self.appendEntry(
                db,
                event: AuditEvent(
                    actor: "system audit", action: AuditChain.pruneAction,
                    result: AuditChain.pruneResult(anchor: anchor), subjectReference: nil),
                at: Self.timestamp())
            return removed
        }
    }

    /// An entry's time (`AuditChain.timestamp`, shared by every backend).
    static func timestamp(_ date: Date = Date()) -> String { AuditChain.timestamp(date) }
}

/// Reads and verifies the audit tables, online (through the store) or offline (a stopped state
/// directory, with only the public key from keyring.json).
public enum AuditLogReader {
    static func entries(_ db: Database, after: Int64 = 0, limit: Int = Int.max) throws -> [AuditChain.Entry] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT seq, at, actor, action, result, subject_commit, prev_hash, hash FROM audit_entry
                WHERE seq > ? ORDER BY seq LIMIT ?
                """, arguments: [after, limit]
        ).map(entry)
    }

    /// An entry as stored. A cell of the wrong type (text where a hash belongs, say) reads as
    /// something that cannot verify, never as a crash of the daemon or the CLI.
    static func entry(_ row: Row) -> AuditChain.Entry {
        func text(_ i: Int) -> String {
            if case .string(let value) = (row[i] as DatabaseValue).storage { return value }
            return "\u{FFFD}"
        }
        func bytes(_ i: Int) -> [UInt8]? {
            switch (row[i] as DatabaseValue).storage {
            case .null: return nil
            case .blob(let data): return Array(data)
            default: return [0xFF]
            }
        }
        return AuditChain.Entry(
            seq: row[0], at: text(1), actor: text(2), action: text(3), result: text(4),
            subjectCommit: bytes(5), prevHash: bytes(6) ?? [], hash: bytes(7) ?? [])
    }

    /// The newest version-2 checkpoint (the anchor's source).
    static func newestCheckpoint(_ db: Database) throws -> AuditChain.Checkpoint? {
        guard try db.columns(in: "audit_checkpoint").contains(where: { $0.name == "format" }),
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT seq, hash, at, signature, format, previous, interval FROM audit_checkpoint WHERE format = 2 ORDER BY seq DESC LIMIT 1
                    """)
        else { return nil }
        return checkpoint(row)
    }

    /// A checkpoint as stored; a cell of the wrong type reads as something that cannot verify.
    static func checkpoint(_ row: Row) -> AuditChain.Checkpoint {
        func bytes(_ i: Int) -> [UInt8] {
            if case .blob(let data) = (row[i] as DatabaseValue).storage { return Array(data) }
            return []
        }
        func integer(_ i: Int) -> Int64? {
            if case .int64(let value) = (row[i] as DatabaseValue).storage { return value }
            return nil
        }
        var at = "\u{FFFD}"
        if case .string(let value) = (row[2] as DatabaseValue).storage { at = value }
        return AuditChain.Checkpoint(
            seq: row[0], hash: bytes(1), at: at, signature: bytes(3), format: Int(integer(4) ?? 0),
            previous: integer(5), interval: integer(6).map { Int($0) })
    }

    static func checkpoints(_ db: Database, after: Int64 = -1, through: Int64 = .max) throws -> [AuditChain.Checkpoint] {
        let versioned = try db.columns(in: "audit_checkpoint").contains { $0.name == "format" }
        let columns = versioned ? "seq, hash, at, signature, format, previous, interval" : "seq, hash, at, signature, 1, NULL, NULL"
        return try Row.fetchAll(
            db, sql: "SELECT \(columns) FROM audit_checkpoint WHERE seq > ? AND seq <= ? ORDER BY seq",
            arguments: [after, through]
        ).map(checkpoint)
    }

    /// Streams the entries through `AuditChain.Verifier`: constant memory for any log length.
    static func verify(_ db: Database, publicKey: [UInt8], interval: Int, anchor: AuditChain.Checkpoint?) throws -> AuditChain.Report {
        let bounds = try Row.fetchOne(db, sql: "SELECT count(*), min(seq), max(seq) FROM audit_entry")
        let count: Int = bounds?[0] ?? 0
        let first: Int64? = bounds?[1]
        let last: Int64? = bounds?[2]
        let pruneRecorded =
            try first.map { first in
                try Bool.fetchOne(
                    db, sql: "SELECT EXISTS (SELECT 1 FROM audit_entry WHERE action = ? AND result = ?)",
                    arguments: [AuditChain.pruneAction, AuditChain.pruneResult(anchor: first - 1)]) ?? false
            } ?? false
        var verifier = AuditChain.Verifier(
            checkpoints: try checkpoints(db), publicKey: publicKey, entries: count,
            firstSeq: first, lastSeq: last, pruneRecorded: pruneRecorded, interval: interval,
            anchor: anchor)
        let cursor = try Row.fetchCursor(
            db,
            sql: """
                SELECT seq, at, actor, action, result, subject_commit, prev_hash, hash FROM audit_entry ORDER BY seq
                """)
        while let row = try cursor.next() {
            if let failure = verifier.feed(entry(row)) { return failure }
        }
        return verifier.finish()
    }

    /// Offline verification of `databasePath`, opened read-only, against `publicKey`, the
    /// checkpoint interval and the anchor in `keysDirectory` (when given).
    public static func verify(databasePath: String, publicKey: [UInt8], interval: Int = 1000, keysDirectory: String? = nil)
        throws(StorageError) -> AuditChain.Report
    {
        try DatabasePreflight.check(path: databasePath)
        let anchor = try keysDirectory.flatMap { (directory) throws(StorageError) in
            try SQLiteRegistryStore.readAnchor(directory: directory)
        }
        var configuration = Configuration()
        configuration.readonly = true
        do {
            let queue = try DatabaseQueue(path: databasePath, configuration: configuration)
            defer { try? queue.close() }
            return try queue.read { db in try verify(db, publicKey: publicKey, interval: interval, anchor: anchor) }
        } catch {
            throw StorageError.from(error, path: databasePath)
        }
    }
}
