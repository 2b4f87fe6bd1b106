/// The audit log a backend keeps (docs/CRYPTO.md §Audit): a hash chain of entries, signed by
/// checkpoints under the audit key, mirrored to the anchor beside the keyring.
///
/// Implementations must:
/// - make each appended entry durable before returning, and commit an entry that a write marks
///   as its own (`AuditRecorder`) in the same transaction as the write;
/// - number entries without gaps, except the gaps a prune or a restore records;
/// - never store a subject reference, only its salted commitment (and the link, until erasure).
public protocol AuditStorage: Sendable {
    /// Appends one entry to the hash-chained audit log (durable when this returns).
    func appendAudit(_ event: AuditEvent) async throws(StorageError)

    /// The audit entries about one subject (its keyed reference), oldest first.
    func auditRecords(subjectReference: [UInt8]) async throws(StorageError) -> [AuditRecord]

    /// Signs the head of the log with a checkpoint (and moves the anchor to it) if entries were
    /// added since the last one. Returns the entry number signed, if any.
    func checkpointAudit() async throws(StorageError) -> Int64?

    /// The result of the newest entry with `action`, if any (what the last policy entry said).
    func lastAuditResult(action: String) async throws(StorageError) -> String?

    /// The time of the newest entry with `action` and `result`, as the log wrote it.
    func lastAuditTime(action: String, result: String) async throws(StorageError) -> String?

    /// Up to `limit` entries numbered after `after`, in order: a page of an export.
    func auditEntries(after: Int64, limit: Int) async throws(StorageError) -> [AuditChain.Entry]

    /// The checkpoints numbered in `after+1...through`.
    func auditCheckpoints(after: Int64, through: Int64) async throws(StorageError) -> [AuditChain.Checkpoint]

    /// Verifies the whole log: every hash, every signature, the checkpoint interval and the
    /// anchor beside the keyring.
    func verifyAudit() async throws(StorageError) -> AuditChain.Report

    /// Removes entries older than `cutoff` (an ISO 8601 UTC time), keeping the chain verifiable:
    /// only entries up to the newest checkpoint older than the cutoff go, that checkpoint stays as
    /// the anchor, and the prune is recorded in the log. Returns how many entries went.
    func pruneAudit(olderThan cutoff: String) async throws(StorageError) -> Int

    /// Entries after the newest checkpoint: what a crash now would leave unsigned.
    func auditUnsignedTail() async throws(StorageError) -> Int
}
