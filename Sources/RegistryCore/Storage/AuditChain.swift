/// The audit log's entries, checkpoints and verification report, as every storage backend
/// returns them (`AuditStorage`). The chain's format, hashing, signatures and verification rules
/// are docs/CRYPTO.md §Audit; their code is `AuditChain`'s extension beside the backend's log.
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

        public init(
            seq: Int64, at: String, actor: String, action: String, result: String, subjectCommit: [UInt8]?,
            prevHash: [UInt8], hash: [UInt8]
        ) {
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

    public struct Checkpoint: Sendable, Equatable, Codable {
        public var seq: Int64
        public var hash: [UInt8]
        public var at: String
        public var signature: [UInt8]
        /// 1 (earlier releases): signs seq, hash and time. 2: also the previous checkpoint and
        /// the interval the daemon checkpoints at.
        public var format: Int
        public var previous: Int64?
        public var interval: Int?

        public init(
            seq: Int64, hash: [UInt8], at: String, signature: [UInt8], format: Int = 2, previous: Int64? = nil, interval: Int? = nil
        ) {
            self.seq = seq
            self.hash = hash
            self.at = at
            self.signature = signature
            self.format = format
            self.previous = previous
            self.interval = interval
        }
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
        /// The most entries allowed without a signed checkpoint (the checkpoint interval).
        public var interval: Int?
        /// The anchor beside the keyring that the log was checked against, if any.
        public var anchorSeq: Int64?
        /// Restores recorded in the log (`audit-restore` entries): entries numbered between the
        /// restored log's end and each restore entry are not in this database.
        public var restores: [Int64]?

        public init(
            ok: Bool, entries: Int, checkpoints: Int, firstSeq: Int64? = nil, lastSeq: Int64? = nil, lastCheckpointSeq: Int64? = nil,
            unsignedTail: Int = 0, badSeq: Int64? = nil, problem: String? = nil, interval: Int? = nil, anchorSeq: Int64? = nil,
            restores: [Int64]? = nil
        ) {
            self.ok = ok
            self.entries = entries
            self.checkpoints = checkpoints
            self.firstSeq = firstSeq
            self.lastSeq = lastSeq
            self.lastCheckpointSeq = lastCheckpointSeq
            self.unsignedTail = unsignedTail
            self.badSeq = badSeq
            self.problem = problem
            self.interval = interval
            self.anchorSeq = anchorSeq
            self.restores = restores
        }
    }
}
