import Foundation
import RegistryCrypto

/// The audit log's hash chain and checkpoints (docs/CRYPTO.md §Audit).
///
///     entry(seq) = "anonreg/v1/audit-entry" ‖ 0x00 ‖ BE64(seq) ‖ lp(at) ‖ lp(actor) ‖ lp(action)
///                  ‖ lp(result) ‖ lp(subject_commit)                   lp(x) = BE32(len x) ‖ x
///     hash(seq)  = BLAKE2b-256(hash(seq - 1) ‖ entry(seq)),  hash(0) = 32 zero bytes
///     signed     = "anonreg/v1/audit-checkpoint" ‖ 0x00 ‖ BE64(seq) ‖ hash(seq) ‖ lp(at)
public enum AuditChain {
    public struct Entry: Sendable, Equatable, Codable {
        public var seq: Int64
        public var at: String
        public var actor: String
        public var action: String
        public var result: String
        /// Salted commitment to the keyed subject reference (hex on the wire), never a code or a
        /// case handle; entries written before schema v2 hold the bare reference here.
        public var subjectCommit: [UInt8]?
        public var prevHash: [UInt8]
        public var hash: [UInt8]

        public init(seq: Int64, at: String, actor: String, action: String, result: String, subjectCommit: [UInt8]?,
                    prevHash: [UInt8], hash: [UInt8]) {
            self.seq = seq
            self.at = at
            self.actor = actor
            self.action = action
            self.result = result
            self.subjectCommit = subjectCommit
            self.prevHash = prevHash
            self.hash = hash
        }
    }

    public struct Checkpoint: Sendable, Equatable {
        public var seq: Int64
        public var hash: [UInt8]
        public var at: String
        public var signature: [UInt8]
    }

    public static var genesis: [UInt8] { [UInt8](repeating: 0, count: KeyedHash.digestBytes) }

    /// The entry that records a prune: entries up to `anchor` were removed on purpose.
    public static let pruneAction = "audit-prune"
    public static func pruneResult(anchor: Int64) -> String { "entries through \(anchor) pruned; anchor checkpoint \(anchor)" }

    static func lp(_ text: String) -> [UInt8] { lp(Array(text.utf8)) }
    /// Length-prefixed with 32 bits, so every byte of every field is covered by the hash.
    static func lp(_ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: bytes.count).bigEndian) { Array($0) } + bytes
    }
    static func be64(_ v: Int64) -> [UInt8] { withUnsafeBytes(of: UInt64(bitPattern: v).bigEndian) { Array($0) } }

    public static func canonical(seq: Int64, at: String, actor: String, action: String, result: String, subjectCommit: [UInt8]?) -> [UInt8] {
        Label.bytes(Label.auditEntry) + [0] + be64(seq) + lp(at) + lp(actor) + lp(action) + lp(result) + lp(subjectCommit ?? [])
    }

    public static func hash(previous: [UInt8], canonical: [UInt8]) throws(CryptoError) -> [UInt8] {
        try KeyedHash.unkeyed(previous + canonical)
    }

    public static func checkpointMessage(seq: Int64, hash: [UInt8], at: String) -> [UInt8] {
        Label.bytes(Label.auditCheckpoint) + [0] + be64(seq) + hash + lp(at)
    }

    /// The result of verifying a log: ok, or the first problem found.
    public struct Report: Sendable, Equatable, Codable {
        public var ok: Bool
        public var entries: Int
        public var checkpoints: Int
        public var firstSeq: Int64?
        public var lastSeq: Int64?
        public var lastCheckpointSeq: Int64?
        /// Entries after the last checkpoint (unsigned yet: the daemon is running or stopped uncleanly).
        public var unsignedTail: Int
        /// The first entry (or checkpoint) that does not verify.
        public var badSeq: Int64?
        public var problem: String?
    }

    /// Verifies entries (any order; sorted here) and checkpoints against the audit public key.
    /// Detects a modified, deleted, inserted or reordered entry, a forged or mismatched
    /// checkpoint, and a tail dropped from under a checkpoint.
    public static func verify(entries unsorted: [Entry], checkpoints: [Checkpoint], publicKey: [UInt8]) -> Report {
        let entries = unsorted.sorted { $0.seq < $1.seq }
        let pruneRecorded = entries.first.map { first in
            entries.contains { $0.action == pruneAction && $0.result == pruneResult(anchor: first.seq - 1) }
        } ?? false
        var verifier = Verifier(checkpoints: checkpoints, publicKey: publicKey, entries: entries.count,
                                firstSeq: entries.first?.seq, lastSeq: entries.last?.seq, pruneRecorded: pruneRecorded)
        for entry in entries {
            if let failure = verifier.feed(entry) { return failure }
        }
        return verifier.finish()
    }

    /// Verification one entry at a time, in sequence order, so that a log of any length is
    /// checked in constant memory (the store streams entries from SQLite). The caller says up
    /// front how many entries there are, the first and last sequence numbers, and whether the
    /// log holds the `audit-prune` entry for a gap before the first one.
    public struct Verifier {
        private var report: Report
        private var bySeq: [Int64: Checkpoint] = [:]
        private var expected = AuditChain.genesis
        private var previousSeq: Int64
        private var failure: Report?

        public init(checkpoints: [Checkpoint], publicKey: [UInt8], entries: Int, firstSeq: Int64?, lastSeq: Int64?,
                    pruneRecorded: Bool) {
            report = Report(ok: true, entries: entries, checkpoints: checkpoints.count, firstSeq: firstSeq, lastSeq: lastSeq,
                            lastCheckpointSeq: checkpoints.map(\.seq).max(), unsignedTail: 0)
            previousSeq = (firstSeq ?? 1) - 1
            for checkpoint in checkpoints.sorted(by: { $0.seq < $1.seq }) {
                let message = checkpointMessage(seq: checkpoint.seq, hash: checkpoint.hash, at: checkpoint.at)
                guard Ed25519.verify(signature: checkpoint.signature, message: message, publicKey: publicKey) else {
                    failure = fail(checkpoint.seq, "the checkpoint at entry \(checkpoint.seq) has an invalid signature")
                    return
                }
                bySeq[checkpoint.seq] = checkpoint
            }
            if let first = firstSeq, first != 1 {
                // Pruned: the chain must continue from a signed checkpoint just before it.
                guard let anchor = bySeq[first - 1] else {
                    failure = fail(first, "entries before \(first) are missing and no signed checkpoint covers them")
                    return
                }
                // A gap at the start is a prune only if the chain records that prune.
                guard pruneRecorded else {
                    failure = fail(first, "entries 1 to \(first - 1) are missing and no audit-prune entry records their pruning")
                    return
                }
                expected = anchor.hash
            }
        }

        private func fail(_ seq: Int64?, _ why: String) -> Report {
            var r = report
            r.ok = false
            r.badSeq = seq
            r.problem = why
            return r
        }

        /// Checks the next entry; returns the failure report at the first problem.
        public mutating func feed(_ entry: Entry) -> Report? {
            if let failure { return failure }
            guard entry.seq == previousSeq + 1 else {
                failure = fail(previousSeq + 1, entry.seq <= previousSeq
                    ? "entry \(entry.seq) appears twice or out of order"
                    : "entry \(previousSeq + 1) is missing (the next entry is \(entry.seq))")
                return failure
            }
            guard entry.prevHash == expected else {
                failure = fail(entry.seq, "entry \(entry.seq) does not follow entry \(entry.seq - 1) (chain link broken: an entry was removed, inserted or reordered)")
                return failure
            }
            let recomputed = (try? hash(previous: expected, canonical: canonical(
                seq: entry.seq, at: entry.at, actor: entry.actor, action: entry.action, result: entry.result, subjectCommit: entry.subjectCommit))) ?? []
            guard recomputed == entry.hash else {
                failure = fail(entry.seq, "entry \(entry.seq) was modified (its content does not match its hash)")
                return failure
            }
            if let checkpoint = bySeq[entry.seq], checkpoint.hash != entry.hash {
                failure = fail(entry.seq, "entry \(entry.seq) does not match its signed checkpoint (the chain was rewritten)")
                return failure
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
                return fail(last + 1, "entries \(last + 1) to \(lastCheckpoint) are missing: the signed checkpoint at \(lastCheckpoint) covers them (the tail was dropped)")
            }
            var done = report
            done.unsignedTail = Int(last - (report.lastCheckpointSeq ?? 0))
            return done
        }
    }
}
