import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring

/// The audit log on PostgreSQL: one hash chain for every node, serialised in the database
/// (docs/STORAGE.md §PostgreSQL, "Audit"; docs/CRYPTO.md §Audit).
///
/// Why one chain and not one per node: every node holds the same keyring, so each can sign the
/// shared chain's checkpoints with the same audit key; one chain keeps `anonreg audit verify`,
/// exports and the subject's own access log exactly as on SQLite; and the order of the entries
/// is the order in which their effects committed, across nodes. The price is that the chain's
/// lock is held from the append to the COMMIT, serialising the ends of writes as SQLite's
/// single writer does: group commit (PostgresGroupCommit.swift) makes that one hold per batch.
///
/// The lock is `pg_advisory_xact_lock(auditLockKey)`. A batch takes it first, before any row:
/// batches of different nodes queue on it before they touch anything else, so no cycle of waits
/// forms between them. At READ COMMITTED, the head read after the lock is granted is the
/// previous holder's committed entry; within the batch, each append passes its entry on as the
/// next one's head (`BatchChain`), and a write rolled back to its savepoint makes the next
/// append read the head again.
extension PostgresStore {
    /// The bytes of "ANRGAUDT" as a big-endian signed 64-bit integer (0x414E524741554454).
    public static let auditLockKey: Int64 = 0x414E_5247_4155_4454

    public func appendAudit(_ event: AuditEvent) async throws(StorageError) {
        let keyring = self.keyring
        let every = auditCheckpointEvery
        let logger = self.logger
        try await write { connection in
            try await Self.appendChained(connection, event: event, checkpointEvery: every, keyring: keyring, logger: logger)
        }
    }

    /// Appends the request's entry inside the write that has the effect, so that the effect and
    /// its entry commit together or not at all. Does nothing outside a request, or if the
    /// request's entry is already written.
    /// `lockedSID`: the subject whose row this transaction holds `FOR UPDATE`, which therefore
    /// exists; its entry is linked without asking the table.
    static func auditEffect(
        _ connection: PostgresConnection, recorder: AuditRecorder?, checkpointEvery: Int, keyring: Keyring, lockedSID: [UInt8]? = nil,
        logger: Logger
    ) async throws {
        guard let recorder, recorder.actionToAppend != nil, let event = recorder.event(result: "ok") else { return }
        try await appendChained(
            connection, event: event, checkpointEvery: checkpointEvery, keyring: keyring, lockedSID: lockedSID, logger: logger)
        recorder.markAppended()
    }

    /// Takes the chain's lock, appends one entry after the head, and signs a checkpoint every
    /// `checkpointEvery` entries.
    static func appendChained(
        _ connection: PostgresConnection, event: AuditEvent, checkpointEvery: Int, keyring: Keyring, lockedSID: [UInt8]? = nil,
        logger: Logger
    ) async throws {
        // In a batch (PostgresGroupCommit.swift) the lock is held and the head may be known.
        let batch = BatchChain.current
        if batch == nil { try await connection.send("SELECT pg_advisory_xact_lock(\(auditLockKey))", logger: logger) }
        let at = AuditChain.timestamp()
        let seq: Int64
        let previous: [UInt8]
        if let head = batch?.head {
            let (next, overflow) = head.seq.addingReportingOverflow(1)
            guard !overflow else { throw StorageError.integrity(what: "audit chain (a sequence number no anonreg writes)") }
            seq = next
            previous = head.hash
        } else if let head = try await connection.row("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1", logger: logger) {
            let cells = head.makeRandomAccess()
            // A head at Int64.max is no number anonreg gives out: refused, never a trap.
            let (next, overflow) = try cells[0].decode(Int64.self).addingReportingOverflow(1)
            guard !overflow else { throw StorageError.integrity(what: "audit chain (a sequence number no anonreg writes)") }
            seq = next
            previous = try cells[1].bytes()
        } else {
            // After a prune, the log continues from the newest checkpoint, its anchor.
            let pruned =
                try await connection.row("SELECT max(seq) FROM audit_checkpoint", logger: logger)?.decode(Int64?.self) ?? nil
            seq = (pruned ?? 0) + 1
            previous = try await anchorHash(connection, before: seq, logger: logger)
        }
        // The chain holds only a salted commitment to the subject reference; the reference and
        // salt are kept beside it while the subject exists (docs/CRYPTO.md §Audit).
        let commitment = try event.subjectReference.map { (reference) throws(StorageError) in
            try SubjectKeys.auditCommitment(reference: reference)
        }
        let canonical = AuditChain.canonical(
            seq: seq, at: at, actor: event.actor, action: event.action, result: event.result, subjectCommit: commitment?.value)
        let hash: [UInt8]
        do { hash = try AuditChain.hash(previous: previous, canonical: canonical) } catch {
            throw StorageError.database(reason: "could not hash an audit entry")
        }
        // The entry and its link go in one statement. A read's entry is appended after the read,
        // in a transaction of its own: if the subject was erased in between (on any node), the
        // entry keeps its commitment but no link, which the statement decides with the subject
        // row's existence. A write that holds the subject's row `FOR UPDATE` knows it exists.
        let entry = AuditEntryValues(
            seq: seq, at: at, actor: event.actor, action: event.action, result: event.result, subjectCommit: commitment?.value,
            previous: previous, hash: hash)
        if let reference = event.subjectReference, let commitment, event.linked {
            let known = event.subjectKey == nil || (lockedSID != nil && event.subjectKey == lockedSID)
            _ = try await connection.rows(
                LinkedAuditEntryStatement(
                    entry: entry, reference: reference, salt: commitment.salt, known: known, subjectKey: event.subjectKey),
                logger: logger)
        } else {
            _ = try await connection.rows(AuditEntryStatement(entry: entry), logger: logger)
        }
        if checkpointEvery > 0, seq % Int64(checkpointEvery) == 0 {
            try await insertCheckpoint(connection, seq: seq, hash: hash, keyring: keyring, interval: checkpointEvery, logger: logger)
        }
        batch?.head = (seq, hash)
    }

    static func anchorHash(_ connection: PostgresConnection, before seq: Int64, logger: Logger) async throws -> [UInt8] {
        guard seq > 1 else { return AuditChain.genesis }
        guard let row = try await connection.row("SELECT hash FROM audit_checkpoint WHERE seq = \(seq - 1)", logger: logger) else {
            throw StorageError.database(reason: "the audit log has no anchor for entry \(seq)")
        }
        return try row.makeRandomAccess()[0].bytes()
    }

    /// Signs a version-2 checkpoint at `seq` (docs/CRYPTO.md §Audit): it names the checkpoint
    /// before it and the interval, so none can be deleted unnoticed. Any node signs, with the
    /// audit key every node's keyring holds. Called with the chain's lock held.
    static func insertCheckpoint(
        _ connection: PostgresConnection, seq: Int64, hash: [UInt8], keyring: Keyring, interval: Int, logger: Logger
    ) async throws {
        let at = AuditChain.timestamp()
        let previous =
            try await connection.row("SELECT max(seq) FROM audit_checkpoint WHERE seq < \(seq)", logger: logger)?.decode(Int64?.self)
            ?? nil
        let checkpoint = AuditChain.Checkpoint(
            seq: seq, hash: hash, at: at, signature: [], format: 2, previous: previous ?? 0, interval: interval)
        let signature: [UInt8]
        do { signature = try keyring.auditSigningKey.sign(checkpoint.message) } catch {
            throw StorageError.database(reason: "could not sign an audit checkpoint")
        }
        try await connection.send(
            """
            INSERT INTO audit_checkpoint (seq, hash, at, signature, format, previous, interval)
            VALUES (\(seq), \(hash.bytea), \(at), \(signature.bytea), 2, \(previous ?? 0), \(Int32(interval)))
            ON CONFLICT (seq) DO NOTHING
            """, logger: logger)
    }

    /// Signs the head of the log if entries were added since the last checkpoint (every few
    /// minutes and on shutdown, on whichever node runs it). Returns the checkpointed seq.
    @discardableResult
    public func checkpointAudit() async throws(StorageError) -> Int64? {
        let keyring = self.keyring
        let interval = auditCheckpointEvery
        let logger = self.logger
        let signed = try await write { connection -> Int64? in
            try await connection.send("SELECT pg_advisory_xact_lock(\(Self.auditLockKey))", logger: logger)
            guard let head = try await connection.row("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1", logger: logger)
            else { return nil }
            let cells = head.makeRandomAccess()
            let seq = try cells[0].decode(Int64.self)
            let signed =
                try await connection.row("SELECT max(seq) FROM audit_checkpoint", logger: logger)?.decode(Int64?.self) ?? nil
            guard seq > (signed ?? 0) else { return nil }
            // What is signed must be what anonreg wrote: the unsigned tail is checked first.
            try await Self.requireUnsignedTailIntact(connection, after: signed, keyring: keyring, logger: logger)
            try await Self.insertCheckpoint(
                connection, seq: seq, hash: try cells[1].bytes(), keyring: keyring, interval: interval, logger: logger)
            return seq
        }
        await refreshAuditAnchor()
        return signed
    }

    /// Throws `.integrity` unless the checkpoint at `seq` is genuine: signed with this keyring's
    /// audit key, over the hash the chain's entry at `seq` has.
    static func requireGenuineCheckpoint(_ connection: PostgresConnection, seq: Int64, keyring: Keyring, logger: Logger) async throws {
        let checkpoint = try await checkpoints(connection, after: seq - 1, through: seq, logger: logger).first
        let entry = try await connection.row("SELECT hash FROM audit_entry WHERE seq = \(seq)", logger: logger)
        let entryHash = try entry.map { try $0.makeRandomAccess()[0].bytes() }
        guard let checkpoint, checkpoint.verify(publicKey: keyring.auditSigningKey.publicKey),
            entryHash == nil || entryHash == checkpoint.hash
        else {
            throw StorageError.integrity(what: "audit checkpoint \(seq) (its signature or hash does not verify)")
        }
    }

    /// Throws `.integrity` unless every entry after the newest checkpoint `after` links to the
    /// one before and hashes to its stored hash, from the checkpoint's own (genuine) hash: a
    /// checkpoint signed now must not sign entries rewritten in the database since the last one.
    /// At most `audit.checkpoint_every` entries are read.
    static func requireUnsignedTailIntact(_ connection: PostgresConnection, after signed: Int64?, keyring: Keyring, logger: Logger)
        async throws
    {
        var expected: [UInt8]
        if let signed, signed > 0 {
            try await requireGenuineCheckpoint(connection, seq: signed, keyring: keyring, logger: logger)
            guard let row = try await connection.row("SELECT hash FROM audit_checkpoint WHERE seq = \(signed)", logger: logger) else {
                throw StorageError.integrity(what: "audit checkpoint \(signed)")
            }
            expected = try row.makeRandomAccess()[0].bytes()
        } else {
            expected = AuditChain.genesis
        }
        for entry in try await entries(connection, query: "WHERE seq > \(signed ?? 0) ORDER BY seq", logger: logger) {
            let canonical = AuditChain.canonical(
                seq: entry.seq, at: entry.at, actor: entry.actor, action: entry.action, result: entry.result,
                subjectCommit: entry.subjectCommit)
            let hash: [UInt8]
            do { hash = try AuditChain.hash(previous: expected, canonical: canonical) } catch {
                throw StorageError.database(reason: "could not hash an audit entry")
            }
            guard entry.prevHash == expected, entry.hash == hash else {
                throw StorageError.integrity(what: "audit entry \(entry.seq) (changed since the last checkpoint; not signed)")
            }
            expected = hash
        }
    }

    /// The result text of the newest entry with `action`, if any.
    public func lastAuditResult(action: String) async throws(StorageError) -> String? {
        let logger = self.logger
        return try await read { connection in
            try await connection.row(
                "SELECT result FROM audit_entry WHERE action = \(action) ORDER BY seq DESC LIMIT 1", logger: logger)?.decode(String.self)
        }
    }

    /// The entries about one subject (its own access log), while it exists.
    public func auditRecords(subjectReference: [UInt8]) async throws(StorageError) -> [AuditRecord] {
        let logger = self.logger
        return try await read { connection in
            var records: [AuditRecord] = []
            for row in try await connection.rows(
                """
                SELECT e.seq, e.at, e.actor, e.action, e.result FROM audit_subject s JOIN audit_entry e ON e.seq = s.seq
                WHERE s.subject_ref = \(subjectReference.bytea) ORDER BY e.seq
                """, logger: logger)
            {
                let (seq, at, actor, action, result) = try row.decode((Int64, String, String, String, String).self)
                records.append(AuditRecord(seq: seq, at: at, actor: actor, action: action, result: result))
            }
            return records
        }
    }

    /// Entries with `seq > after`, oldest first, at most `limit` (for export).
    public func auditEntries(after: Int64, limit: Int) async throws(StorageError) -> [AuditChain.Entry] {
        let logger = self.logger
        return try await read { connection in
            try await Self.entries(connection, query: "WHERE seq > \(after) ORDER BY seq LIMIT \(Int64(limit))", logger: logger)
        }
    }

    /// Checkpoints with `after < seq <= through` (for export).
    public func auditCheckpoints(after: Int64, through: Int64) async throws(StorageError) -> [AuditChain.Checkpoint] {
        let logger = self.logger
        return try await read { connection in
            try await Self.checkpoints(connection, after: after, through: through, logger: logger)
        }
    }

    /// Verifies the whole chain, every node's entries, against the keyring's audit public key,
    /// the checkpoint interval and this node's anchor, in one snapshot. It streams: constant
    /// memory for any length. A chain cut off before the anchor's entry, however consistent what
    /// is left, fails (`PostgresAuditTamperTests.aSwapAndACutTailAreCaught`).
    public func verifyAudit() async throws(StorageError) -> AuditChain.Report {
        try await verifyAudit(anchor: try AuditChain.Checkpoint.anchor(in: keyring.source.directory))
    }

    /// The same against `anchor`; nil checks the chain as it stands (a restored chain, whose
    /// end the nodes' anchors are past, before its restore is recorded).
    func verifyAudit(anchor: AuditChain.Checkpoint?) async throws(StorageError) -> AuditChain.Report {
        let publicKey = keyring.auditSigningKey.publicKey
        let interval = auditCheckpointEvery
        let logger = self.logger
        return try await read { connection in
            let bounds = try await connection.row("SELECT count(*), min(seq), max(seq) FROM audit_entry", logger: logger)
            let (count, first, last) = try bounds?.decode((Int64, Int64?, Int64?).self) ?? (Int64(0), nil, nil)
            var pruneRecorded = false
            if let first {
                pruneRecorded =
                    try await connection.row(
                        """
                        SELECT 1 FROM audit_entry WHERE action = \(AuditChain.pruneAction)
                        AND result = \(AuditChain.pruneResult(anchor: first - 1)) LIMIT 1
                        """, logger: logger) != nil
            }
            var verifier = AuditChain.Verifier(
                checkpoints: try await Self.checkpoints(connection, after: -1, through: .max, logger: logger), publicKey: publicKey,
                entries: Int(count), firstSeq: first, lastSeq: last, pruneRecorded: pruneRecorded, interval: interval, anchor: anchor)
            let rows = try await connection.stream(
                "SELECT seq, at, actor, action, result, subject_commit, prev_hash, hash FROM audit_entry ORDER BY seq", logger: logger)
            for try await row in rows {
                if let failure = verifier.feed(try Self.entry(row)) { return failure }
            }
            return verifier.finish()
        }
    }

    static func entries(_ connection: PostgresConnection, query tail: PostgresQuery, logger: Logger) async throws -> [AuditChain.Entry] {
        var sql = "SELECT seq, at, actor, action, result, subject_commit, prev_hash, hash FROM audit_entry "
        sql += tail.sql
        var entries: [AuditChain.Entry] = []
        for row in try await connection.rows(PostgresQuery(unsafeSQL: sql, binds: tail.binds), logger: logger) {
            entries.append(try entry(row))
        }
        return entries
    }

    static func entry(_ row: PostgresRow) throws -> AuditChain.Entry {
        let cells = row.makeRandomAccess()
        return AuditChain.Entry(
            seq: try cells[0].decode(Int64.self), at: try cells[1].decode(String.self), actor: try cells[2].decode(String.self),
            action: try cells[3].decode(String.self), result: try cells[4].decode(String.self),
            subjectCommit: try cells[5].optionalBytes(), prevHash: try cells[6].bytes(), hash: try cells[7].bytes())
    }

    /// Checkpoints with `after < seq <= through`, oldest first; with `format`, only that
    /// version; with `newestOnly`, only the newest.
    static func checkpoints(
        _ connection: PostgresConnection, after: Int64, through: Int64, format: Int32? = nil, newestOnly: Bool = false, logger: Logger
    ) async throws -> [AuditChain.Checkpoint] {
        var checkpoints: [AuditChain.Checkpoint] = []
        let order = newestOnly ? "DESC LIMIT 1" : ""
        for row in try await connection.rows(
            """
            SELECT seq, hash, at, signature, format, previous, interval FROM audit_checkpoint
            WHERE seq > \(after) AND seq <= \(through) AND (\(format)::integer IS NULL OR format = \(format)) ORDER BY seq \(unescaped: order)
            """, logger: logger)
        {
            let cells = row.makeRandomAccess()
            checkpoints.append(
                AuditChain.Checkpoint(
                    seq: try cells[0].decode(Int64.self), hash: try cells[1].bytes(), at: try cells[2].decode(String.self),
                    signature: try cells[3].bytes(), format: Int(try cells[4].decode(Int32.self)),
                    previous: try cells[5].decode(Int64?.self), interval: try cells[6].decode(Int32?.self).map { Int($0) }))
        }
        return checkpoints
    }
}
