import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring

/// The audit log's hash chain and checkpoints (docs/CRYPTO.md §Audit).
///
///     entry(seq) = "anonreg/v1/audit-entry" ‖ 0x00 ‖ BE64(seq) ‖ lp(at) ‖ lp(actor) ‖ lp(action)
///                  ‖ lp(result) ‖ lp(subject_commit)                   lp(x) = BE32(len x) ‖ x
///     hash(seq)  = BLAKE2b-256(hash(seq - 1) ‖ entry(seq)),  hash(0) = 32 zero bytes
///     signed v1  = "anonreg/v1/audit-checkpoint" ‖ 0x00 ‖ BE64(seq) ‖ hash(seq) ‖ lp(at)
///     signed v2  = "anonreg/v2/audit-checkpoint" ‖ 0x00 ‖ BE64(seq) ‖ hash(seq) ‖ lp(at)
///                  ‖ BE64(previous checkpoint's seq, 0 for none) ‖ BE32(interval)
///
/// The chain itself is unkeyed, so that an auditor checks an exported copy with the public key
/// alone; what makes it tamper-evident is that it is signed at least every `interval` entries
/// and that the newest signature is also kept outside the database (`AuditAnchor`): a rewritten
/// chain without valid checkpoints, or with the newest ones deleted, fails verification.
extension AuditChain {
    public static var genesis: [UInt8] { [UInt8](repeating: 0, count: KeyedHash.digestBytes) }

    /// The entry that records a restore (docs/CRYPTO.md §Audit, "Restores"): the restored log
    /// ended at `ended`, and numbering continues after every number that can have been issued
    /// before, so exported entries are never numbered twice. Always signed by a checkpoint at
    /// its own number.
    public static let restoreAction = "audit-restore"
    /// A restore's entry is numbered after the next multiple of this above every number issued.
    public static let restoreStep: Int64 = 1_000_000_000
    public static func restoreResult(createdAt: String, ended: Int64, head: [UInt8], reErased: Int, continuesAfter: Int64) -> String {
        "restored a backup created \(createdAt) whose log ended at entry \(ended) (head \(Hex.encode(head))); "
            + "\(reErased) subject(s) erased again by the erasure ledger; numbering continues after entry \(continuesAfter)"
    }
    package static func restoreContinuesAfter(_ result: String) -> Int64? {
        guard let range = result.range(of: "numbering continues after entry ") else { return nil }
        return Int64(result[range.upperBound...].prefix { $0.isNumber })
    }
    package static func restoreEnded(_ result: String) -> Int64? {
        guard let range = result.range(of: "whose log ended at entry ") else { return nil }
        return Int64(result[range.upperBound...].prefix { $0.isNumber })
    }

    /// The entry that records a prune: entries up to `anchor` were removed on purpose.
    public static let pruneAction = "audit-prune"
    public static func pruneResult(anchor: Int64) -> String { "entries through \(anchor) pruned; anchor checkpoint \(anchor)" }

    package static func lp(_ text: String) -> [UInt8] { lp(Array(text.utf8)) }
    /// Length-prefixed with 32 bits, so every byte of every field is covered by the hash.
    package static func lp(_ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: bytes.count).bigEndian) { Array($0) } + bytes
    }
    package static func be64(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: UInt64(bitPattern: v).bigEndian) { Array($0) } }

    public static func canonical(seq: Int64, at: String, actor: String, action: String, result: String, subjectCommit: [UInt8]?) -> [UInt8]
    {
        Label.bytes(Label.auditEntry) + [0] + be64(seq) + lp(at) + lp(actor) + lp(action) + lp(result) + lp(subjectCommit ?? [])
    }

    public static func hash(previous: [UInt8], canonical: [UInt8]) throws(CryptoError) -> [UInt8] {
        try KeyedHash.unkeyed(previous + canonical)
    }

    public static func checkpointMessage(seq: Int64, hash: [UInt8], at: String) -> [UInt8] {
        Label.bytes(Label.auditCheckpoint) + [0] + be64(seq) + hash + lp(at)
    }

    public static func checkpointMessageV2(seq: Int64, hash: [UInt8], at: String, previous: Int64, interval: Int) -> [UInt8] {
        Label.bytes(Label.auditCheckpointV2) + [0] + be64(seq) + hash + lp(at) + be64(previous)
            + withUnsafeBytes(of: UInt32(truncatingIfNeeded: interval).bigEndian) { Array($0) }
    }

    /// What is verified: the registry's own log (every rule), or an exported copy, which may
    /// start after a checkpoint and may end with entries that no checkpoint signs yet.
    public enum Scope: Sendable { case database, export }

    /// Verifies entries (any order; sorted here) and checkpoints against the audit public key.
    /// Detects a modified, deleted, inserted or reordered entry, a forged, deleted or mismatched
    /// checkpoint, a tail dropped from under a checkpoint, and (with `anchor`) a log cut short or
    /// replaced by an older copy.
    public static func verify(
        entries unsorted: [Entry], checkpoints: [Checkpoint], publicKey: [UInt8], interval: Int = 1000,
        anchor: Checkpoint? = nil, scope: Scope = .database
    ) -> Report {
        let entries = unsorted.sorted { $0.seq < $1.seq }
        let pruneRecorded =
            entries.first.map { first in
                entries.contains { $0.action == pruneAction && $0.result == pruneResult(anchor: first.seq - 1) }
            } ?? false
        var verifier = Verifier(
            checkpoints: checkpoints, publicKey: publicKey, entries: entries.count,
            firstSeq: entries.first?.seq, lastSeq: entries.last?.seq, pruneRecorded: pruneRecorded,
            interval: interval, anchor: anchor, scope: scope)
        for entry in entries {
            if let failure = verifier.feed(entry) { return failure }
        }
        return verifier.finish()
    }

    /// Verification one entry at a time, in sequence order, so that a log of any length is
    /// checked in constant memory (the store streams entries from SQLite). The caller says up
    /// front how many entries there are, the first and last sequence numbers, and whether the
    /// log holds the `audit-prune` entry for a gap before the first one.
    ///
    /// The rules (docs/CRYPTO.md §Audit, "Verification"):
    /// - every entry hashes to its stored hash and links to the one before;
    /// - every checkpoint's signature verifies; a version-2 checkpoint names the checkpoint
    ///   before it, so none can be deleted from the middle;
    /// - no more than `interval` entries (the largest of the configured interval and the
    ///   intervals the checkpoints around them signed) go without a signed checkpoint, and the
    ///   unsigned tail is no longer than that: a rewritten chain whose checkpoints were deleted
    ///   fails, whatever was recomputed;
    /// - numbering has no gap, except a prune (recorded) or a restore (recorded and signed);
    /// - with an anchor, the log holds the anchor's entry with its hash.
    public struct Verifier {
        private var report: Report
        private var bySeq: [Int64: Checkpoint] = [:]
        private var expected = AuditChain.genesis
        private var previousSeq: Int64
        private var failure: Report?
        private let configured: Int
        private let anchor: Checkpoint?
        private let scope: Scope
        private var anchorSeen = false
        /// The interval signed by the checkpoint the current stretch started at.
        private var stretchInterval: Int?
        private var sinceCheckpoint = 0

        public init(
            checkpoints: [Checkpoint], publicKey: [UInt8], entries: Int, firstSeq: Int64?, lastSeq: Int64?,
            pruneRecorded: Bool, interval: Int = 1000, anchor: Checkpoint? = nil, scope: Scope = .database
        ) {
            configured = max(1, interval)
            self.anchor = anchor
            self.scope = scope
            report = Report(
                ok: true, entries: entries, checkpoints: checkpoints.count, firstSeq: firstSeq, lastSeq: lastSeq,
                lastCheckpointSeq: checkpoints.map(\.seq).max(), unsignedTail: 0, interval: configured,
                anchorSeq: anchor?.seq, restores: [])
            previousSeq = (firstSeq ?? 1) - 1
            let sorted = checkpoints.sorted(by: { $0.seq < $1.seq })
            for (i, checkpoint) in sorted.enumerated() {
                guard checkpoint.verify(publicKey: publicKey) else {
                    failure = fail(checkpoint.seq, "the checkpoint at entry \(checkpoint.seq) has an invalid signature")
                    return
                }
                // A version-2 checkpoint names its predecessor: a checkpoint deleted from the
                // middle leaves a name that points at nothing. The first one kept after a prune
                // (or the first of an export) names one that is gone on purpose.
                if checkpoint.format == 2, i > 0, checkpoint.previous != sorted[i - 1].seq {
                    failure = fail(
                        checkpoint.seq,
                        "the checkpoint at entry \(checkpoint.seq) follows the one at entry \(checkpoint.previous ?? 0), which is missing (a signed checkpoint was deleted)"
                    )
                    return
                }
                bySeq[checkpoint.seq] = checkpoint
            }
            if let anchor {
                guard anchor.verify(publicKey: publicKey) else {
                    failure = fail(anchor.seq, "the audit anchor beside the keyring has an invalid signature")
                    return
                }
            }
            if let first = firstSeq, first != 1 {
                // Pruned (or an export from the middle): the chain must continue from a signed
                // checkpoint just before it.
                guard let start = bySeq[first - 1] else {
                    failure = fail(first, "entries before \(first) are missing and no signed checkpoint covers them")
                    return
                }
                // A gap at the start of the registry's log is a prune only if the chain records it.
                guard pruneRecorded || scope == .export else {
                    failure = fail(first, "entries 1 to \(first - 1) are missing and no audit-prune entry records their pruning")
                    return
                }
                expected = start.hash
                stretchInterval = start.interval
            }
        }

        private func fail(_ seq: Int64?, _ why: String) -> Report {
            var r = report
            r.ok = false
            r.badSeq = seq
            r.problem = why
            return r
        }

        /// The most entries a stretch may hold without a checkpoint.
        private func allowed(_ closing: Checkpoint?) -> Int {
            max(configured, stretchInterval ?? 0, closing?.interval ?? 0)
        }

        /// Checks the next entry; returns the failure report at the first problem.
        public mutating func feed(_ entry: Entry) -> Report? {
            if let failure { return failure }
            var isRestore = false
            if entry.seq != previousSeq + 1 {
                // A restore continues numbering after everything that can have been issued before
                // it; its entry says where the restored log ended, and a checkpoint signs it.
                if entry.seq > previousSeq + 1, entry.action == restoreAction, restoreEnded(entry.result) == previousSeq,
                    bySeq[entry.seq] != nil
                {
                    isRestore = true
                    report.restores?.append(entry.seq)
                } else {
                    failure = fail(
                        previousSeq + 1,
                        entry.seq <= previousSeq
                            ? "entry \(entry.seq) appears twice or out of order"
                            : "entry \(previousSeq + 1) is missing (the next entry is \(entry.seq))")
                    return failure
                }
            }
            guard entry.prevHash == expected else {
                failure = fail(
                    entry.seq,
                    "entry \(entry.seq) does not follow entry \(previousSeq) (chain link broken: an entry was removed, inserted or reordered)"
                )
                return failure
            }
            let recomputed =
                (try? hash(
                    previous: expected,
                    canonical: canonical(
                        seq: entry.seq, at: entry.at, actor: entry.actor, action: entry.action, result: entry.result,
                        subjectCommit: entry.subjectCommit))) ?? []
            guard recomputed == entry.hash else {
                failure = fail(entry.seq, "entry \(entry.seq) was modified (its content does not match its hash)")
                return failure
            }
            if let anchor, anchor.seq == entry.seq {
                guard anchor.hash == entry.hash else {
                    failure = fail(
                        entry.seq,
                        "entry \(entry.seq) disagrees with the audit anchor beside the keyring (the log was rewritten or replaced)")
                    return failure
                }
                anchorSeen = true
            }
            if entry.action == restoreAction, bySeq[entry.seq] != nil {
                isRestore = true
                if report.restores?.last != entry.seq { report.restores?.append(entry.seq) }
            }
            if !isRestore { sinceCheckpoint += 1 }
            if let checkpoint = bySeq[entry.seq] {
                guard checkpoint.hash == entry.hash else {
                    failure = fail(entry.seq, "entry \(entry.seq) does not match its signed checkpoint (the chain was rewritten)")
                    return failure
                }
                guard sinceCheckpoint <= allowed(checkpoint) else {
                    failure = fail(
                        entry.seq,
                        "\(sinceCheckpoint) entries before entry \(entry.seq) have no signed checkpoint, more than the interval of \(allowed(checkpoint)) (signed checkpoints were deleted)"
                    )
                    return failure
                }
                sinceCheckpoint = 0
                stretchInterval = checkpoint.interval
            }
            expected = entry.hash
            previousSeq = entry.seq
            return nil
        }

        /// The report once every entry was fed.
        public func finish() -> Report {
            if let failure { return failure }
            let last = previousSeq
            guard last == (report.lastSeq ?? 0) else {
                return fail(last + 1, "entry \(last + 1) is missing (the log ends early)")
            }
            if let lastCheckpoint = report.lastCheckpointSeq, lastCheckpoint > last {
                return fail(
                    last + 1,
                    "entries \(last + 1) to \(lastCheckpoint) are missing: the signed checkpoint at \(lastCheckpoint) covers them (the tail was dropped)"
                )
            }
            if let anchor, !anchorSeen {
                // Pruned up to the anchor itself: its checkpoint stays, with the same hash.
                if let kept = bySeq[anchor.seq], kept.hash == anchor.hash {
                } else if anchor.seq > last {
                    return fail(
                        last + 1,
                        "the log ends at entry \(last), but the audit anchor beside the keyring records a signed checkpoint at entry \(anchor.seq): entries were cut off, or an older copy of the database was put in place without `anonreg backup restore`"
                    )
                } else {
                    return fail(anchor.seq, "entry \(anchor.seq), which the audit anchor beside the keyring signs, is not in the log")
                }
            }
            var done = report
            done.unsignedTail = sinceCheckpoint
            // An export proves only what a checkpoint in it signs: one with entries and no
            // checkpoint at all proves nothing (it could be forged whole from the public format).
            if scope == .export, last > 0, (report.lastCheckpointSeq ?? 0) < (report.firstSeq ?? 1) {
                return fail(report.firstSeq, "no entry of this export is signed by a checkpoint in it: it proves nothing")
            }
            if sinceCheckpoint > allowed(nil) {
                return fail(
                    last,
                    "the last \(sinceCheckpoint) entries have no signed checkpoint, more than the interval of \(allowed(nil)): signed checkpoints were deleted, or the log was rewritten"
                )
            }
            return done
        }
    }
}

extension AuditChain.Checkpoint {
    /// The bytes its signature covers.
    public var message: [UInt8] {
        format == 2
            ? AuditChain.checkpointMessageV2(seq: seq, hash: hash, at: at, previous: previous ?? 0, interval: interval ?? 0)
            : AuditChain.checkpointMessage(seq: seq, hash: hash, at: at)
    }

    public func verify(publicKey: [UInt8]) -> Bool {
        Ed25519.verify(signature: signature, message: message, publicKey: publicKey)
    }

    /// The anchor file's form of a version-2 checkpoint.
    public var anchor: AuditAnchor? {
        guard format == 2, let previous, let interval else { return nil }
        return AuditAnchor(seq: seq, hash: hash, at: at, previous: previous, interval: interval, signature: signature)
    }

    /// The anchor in a keys directory (docs/CRYPTO.md §Audit, "Anchor") as a checkpoint, or nil
    /// when there is none; an anchor that does not parse is `.unusableDatabase` naming it.
    package static func anchor(in directory: String) throws(StorageError) -> AuditChain.Checkpoint? {
        let path = directory + "/" + AuditAnchor.fileName
        let anchor: AuditAnchor?
        do { anchor = try AuditAnchor.read(directory: directory) } catch { throw .unusableDatabase(path: path, reason: "\(error)") }
        guard let anchor else { return nil }
        guard let checkpoint = AuditChain.Checkpoint(anchor: anchor) else {
            throw .unusableDatabase(path: path, reason: "it holds a malformed checkpoint")
        }
        return checkpoint
    }

    public init?(anchor: AuditAnchor) {
        guard let hash = try? Hex.decode(anchor.hash), let signature = try? Hex.decode(anchor.signature) else { return nil }
        self.init(
            seq: anchor.seq, hash: hash, at: anchor.at, signature: signature, format: 2, previous: anchor.previous,
            interval: anchor.interval)
    }
}
