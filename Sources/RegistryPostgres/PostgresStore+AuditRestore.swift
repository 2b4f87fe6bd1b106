import Foundation
import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring

/// A restore of the PostgreSQL database, recorded in the audit chain (docs/CRYPTO.md §Audit,
/// "Restores"; docs/OPERATIONS.md §PostgreSQL and several nodes, "Restoring").
///
/// After `pg_restore` or a base backup brought back, the chain ends before the entries each
/// node's anchor records, and every node refuses to start, as it must for a chain cut short.
/// `anonregd --record-restore` appends, as SQLite's `anonreg backup restore` does, a signed
/// `audit-restore` entry that says where the restored chain ended and continues numbering after
/// the next multiple of `AuditChain.restoreStep` above every number the registry can have issued.
/// Each node's start accepts a chain whose newest signed restore continues after its anchor, and
/// moves its anchor there. Only a holder of the audit key can sign one: a database administrator
/// who puts an older copy in place without it is still refused, and an older copy that carries an
/// older restore is refused too, since that restore continues before the nodes' anchors.
extension PostgresStore {
    public func recordDatabaseRestore(actor: String) async throws(StorageError) -> AuditChain.Checkpoint {
        // The restored chain is signed on top of only if it verifies as it stands: a dump whose
        // checkpoints were deleted or whose tail was rewritten is not blessed by the operator's
        // signature.
        let restored = try await verifyAudit(anchor: nil)
        guard restored.ok else {
            throw .integrity(
                what:
                    "the restored audit log (entry \(restored.badSeq.map(String.init) ?? "?"): \(restored.problem ?? "it does not verify")); the restore is not recorded"
            )
        }
        // The restored database may lack erasures made after its copy: they go back to the
        // database's list first, and stay refused; the rows the copy brought back of subjects
        // the ledger names are erased again, in the restore's transaction, as
        // `anonreg backup restore` does on SQLite.
        try await synchroniseErasureLedger()
        let keyring = self.keyring
        let logger = self.logger
        let resurrected = try await subjectsNamedInTheLedger(keyring: keyring)
        let anchorSeq = try AuditChain.Checkpoint.anchor(in: keyring.source.directory)?.seq ?? 0
        let every = auditCheckpointEvery
        let checkpoint = try await write { connection -> AuditChain.Checkpoint in
            try await connection.send("SELECT pg_advisory_xact_lock(\(Self.auditLockKey))", logger: logger)
            var reErased = 0
            for subject in resurrected {
                guard let row = try await self.subjectRow(connection, subject, forUpdate: true, logger: logger) else { continue }
                // Already in the ledger: erased without a new ledger line or entry of its own;
                // the restore's entry counts it.
                try await self.erase(
                    connection, subject: try row(), counters: [], recorder: nil, checkpointEvery: every, ledger: false, logger: logger)
                reErased += 1
            }
            let ended: Int64
            let previous: [UInt8]
            if let head = try await connection.row("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1", logger: logger) {
                let cells = head.makeRandomAccess()
                ended = try cells[0].decode(Int64.self)
                previous = try cells[1].bytes()
            } else {
                ended = try await connection.row("SELECT max(seq) FROM audit_checkpoint", logger: logger)?.decode(Int64?.self) ?? 0
                previous = try await Self.anchorHash(connection, before: ended + 1, logger: logger)
            }
            let step = AuditChain.restoreStep
            // As on SQLite (docs/CRYPTO.md §Audit, "Restores"): the highest number the registry
            // can have issued is the anchor's plus one interval, or the restored head if larger.
            let issued = max(ended, anchorSeq &+ Int64(max(0, every)))
            let (stepped, overflow) = (issued / step + 1).multipliedReportingOverflow(by: step)
            guard !overflow, stepped < .max else { throw StorageError.integrity(what: "audit chain (a sequence number no anonreg writes)") }
            // With several nodes, the recording node's anchor may be older than another's (a
            // node down since an earlier restore), so "above everything issued" is not known
            // for sure here. The number also goes past the time in seconds × 10⁶: entries are
            // issued far slower than a million a second, so no restore's numbers reach a later
            // one's, whichever node records them, unless the clock went back (docs/CRYPTO.md
            // §Audit, "Restores").
            let ahead = max(stepped, Self.restoreFloor(at: Date()))
            let seq = ahead + 1
            let at = AuditChain.timestamp()
            let result = AuditChain.restoreResult(
                createdAt: "unknown (restored with PostgreSQL's tools)", ended: ended, head: previous, reErased: reErased,
                continuesAfter: ahead)
            let canonical = AuditChain.canonical(
                seq: seq, at: at, actor: actor, action: AuditChain.restoreAction, result: result, subjectCommit: nil)
            let hash: [UInt8]
            do { hash = try AuditChain.hash(previous: previous, canonical: canonical) } catch {
                throw StorageError.database(reason: "could not hash an audit entry")
            }
            try await connection.send(
                """
                INSERT INTO audit_entry (seq, at, actor, action, result, subject_commit, prev_hash, hash)
                VALUES (\(seq), \(at), \(actor), \(AuditChain.restoreAction), \(result), NULL, \(previous.bytea), \(hash.bytea))
                """, logger: logger)
            try await Self.insertCheckpoint(connection, seq: seq, hash: hash, keyring: keyring, interval: every, logger: logger)
            BatchChain.current?.head = (seq, hash)
            // A row planted at this number beforehand would have been kept (ON CONFLICT DO
            // NOTHING): only the checkpoint just signed is the restore's.
            guard let checkpoint = try await Self.checkpoints(connection, after: seq - 1, through: seq, logger: logger).first,
                checkpoint.hash == hash, checkpoint.verify(publicKey: keyring.auditSigningKey.publicKey)
            else {
                throw StorageError.integrity(what: "audit checkpoint \(seq) (a row there was not written by this restore)")
            }
            return checkpoint
        }
        await refreshAuditAnchor()
        // The rows erased again leave dead tuples: the cleanup VACUUM runs now, since this is an
        // offline command whose store closes next (a failure leaves them to autovacuum).
        if !resurrected.isEmpty { _ = await vacuumAfterErasures() }
        return checkpoint
    }

    /// The lowest number a restore recorded at `date` continues after: its Unix time in whole
    /// seconds × 10⁶, about 1.8 × 10¹⁵ in 2026. It stays below 2⁵³ (until 2255), so that tools
    /// that read JSON numbers as doubles (jq, JavaScript) still read exported numbers exactly.
    static func restoreFloor(at date: Date) -> Int64 {
        Int64(max(0, date.timeIntervalSince1970.rounded(.down))) * restoreClockStep
    }

    /// Entry numbers per second of the restore floor (`restoreFloor`).
    static let restoreClockStep: Int64 = 1_000_000

    /// The subjects whose rows exist although the erasure ledger names them (rows a restore
    /// brought back): each row's ledger reference is computed from its `sid`, a keyed hash per
    /// subject, in one pass over the table.
    private func subjectsNamedInTheLedger(keyring: Keyring) async throws(StorageError) -> [SubjectReference] {
        let ledger = ErasureLedger(keyring: keyring)
        let erased = self.erased
        let logger = self.logger
        return try await read { connection in
            var named: [SubjectReference] = []
            for try await (id, sid) in try await connection.stream("SELECT id, sid FROM subject ORDER BY id", logger: logger).decode(
                (Int64, ByteBuffer).self)
            {
                if erased.contains(try ledger.reference(sid: Array(sid.readableBytesView))) {
                    named.append(SubjectReference(rawValue: id))
                }
            }
            return named
        }
    }

    /// The chain's newest restore entry that continues after `anchorSeq`, if it is signed: its
    /// checkpoint verifies with the audit key and holds the entry's hash (checkAuditAnchor).
    func signedRestore(after anchorSeq: Int64) async throws(StorageError) -> AuditChain.Checkpoint? {
        let logger = self.logger
        let publicKey = keyring.auditSigningKey.publicKey
        let found = try await read { connection -> (AuditChain.Entry, AuditChain.Checkpoint)? in
            guard
                let entry = try await Self.entries(
                    connection,
                    query: """
                        WHERE action = \(AuditChain.restoreAction) AND seq IN (SELECT seq FROM audit_checkpoint)
                        ORDER BY seq DESC LIMIT 1
                        """, logger: logger
                ).first,
                let checkpoint = try await Self.checkpoints(connection, after: entry.seq - 1, through: entry.seq, logger: logger).first
            else { return nil }
            return (entry, checkpoint)
        }
        guard let (entry, checkpoint) = found else { return nil }
        // The entry's hash is computed again from what it says: the signature covers the hash,
        // and a result rewritten to claim another `continues after` must not ride on it.
        let canonical = AuditChain.canonical(
            seq: entry.seq, at: entry.at, actor: entry.actor, action: entry.action, result: entry.result,
            subjectCommit: entry.subjectCommit)
        guard let hash = try? AuditChain.hash(previous: entry.prevHash, canonical: canonical), hash == entry.hash,
            checkpoint.hash == hash, checkpoint.verify(publicKey: publicKey),
            let continues = AuditChain.restoreContinuesAfter(entry.result), continues >= anchorSeq
        else { return nil }
        return checkpoint
    }
}
