import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import Synchronization

/// Counts the checkpoints signed in this process, so that a write can tell cheaply whether its
/// transaction signed one and the anchor must be replaced.
enum AuditAnchorTracker {
    static let checkpointsSigned = Atomic<Int>(0)
}

/// The audit anchor beside the keyring (docs/CRYPTO.md §Audit, "Anchor"; `AuditAnchor`).
extension SQLiteRegistryStore {
    /// The anchor in a keys directory as a checkpoint, or nil when there is none.
    public static func readAnchor(directory: String) throws(StorageError) -> AuditChain.Checkpoint? {
        try AuditChain.Checkpoint.anchor(in: directory)
    }

    /// Replaces the anchor with the newest version-2 checkpoint of the log, if it is newer than
    /// the anchor. Called after every write whose transaction signed a checkpoint, after it
    /// committed; a failure (disk full) leaves the older anchor, which the log still extends, and
    /// is retried after the next checkpoint.
    func refreshAuditAnchor() async {
        let signed = AuditAnchorTracker.checkpointsSigned.load(ordering: .relaxed)
        guard let newest = try? await read({ db in try AuditLogReader.newestCheckpoint(db) }) else { return }
        let directory = keyring.source.directory
        anchorState.withLock { state in
            state.seen = signed
            guard let anchor = newest.anchor, anchor.seq > state.written else { return }
            do {
                try anchor.write(directory: directory)
                state.written = anchor.seq
            } catch {
                state.failure = "\(error)"
            }
        }
    }

    /// Whether a checkpoint was signed since the anchor was last refreshed.
    var anchorIsStale: Bool {
        AuditAnchorTracker.checkpointsSigned.load(ordering: .relaxed) != anchorState.withLock { $0.seen }
    }

    /// At start: the database's log must reach the anchor and agree with it there (docs/CRYPTO.md
    /// §Audit, "Anchor"). A log behind its anchor was cut, or is an older copy put in place
    /// without `anonreg backup restore`: the daemon refuses it (exit 4). A log ahead of its anchor
    /// (a crash between a checkpoint's commit and the anchor's replacement) catches the anchor up.
    public func checkAuditAnchor() async throws(StorageError) {
        let directory = keyring.source.directory
        guard let anchor = try Self.readAnchor(directory: directory) else {
            await refreshAuditAnchor()
            return
        }
        let path = directory + "/" + AuditAnchor.fileName
        guard anchor.verify(publicKey: keyring.auditSigningKey.publicKey) else {
            throw .unusableDatabase(path: path, reason: "the audit anchor's signature does not verify with this keyring's audit key")
        }
        let (entryHash, checkpointHash, last, restore) = try await read { db -> (Data?, Data?, Int64, AuditChain.Checkpoint?) in
            // The newest signed restore entry, if the log has one (a restore whose anchor was not
            // written yet, or a copy restored beside the registry's database and now served).
            var restore: AuditChain.Checkpoint? = nil
            if let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT e.result, e.seq FROM audit_entry e JOIN audit_checkpoint c ON c.seq = e.seq
                    WHERE e.action = ? ORDER BY e.seq DESC LIMIT 1
                    """, arguments: [AuditChain.restoreAction]),
                let continues = AuditChain.restoreContinuesAfter(row[0] as String? ?? ""), continues >= anchor.seq
            {
                restore = try AuditLogReader.checkpoints(db, after: (row[1] as Int64) - 1, through: row[1]).first
            }
            return (
                try Data.fetchOne(db, sql: "SELECT hash FROM audit_entry WHERE seq = ?", arguments: [anchor.seq]),
                try Data.fetchOne(db, sql: "SELECT hash FROM audit_checkpoint WHERE seq = ?", arguments: [anchor.seq]),
                try Int64.fetchOne(db, sql: "SELECT coalesce(max(seq), 0) FROM audit_entry") ?? 0,
                restore
            )
        }
        if let restore, restore.verify(publicKey: keyring.auditSigningKey.publicKey) {
            // A signed restore that continues numbering after the anchor's entry: the log was
            // restored by `anonreg backup restore`, and the anchor follows it.
            anchorState.withLock { $0.written = 0 }
            AuditAnchorTracker.checkpointsSigned.add(1, ordering: .relaxed)
            await refreshAuditAnchor()
            return
        }
        if let hash = entryHash ?? checkpointHash {
            guard Array(hash) == anchor.hash else {
                throw .unusableDatabase(
                    path: self.path,
                    reason:
                        "its audit log disagrees at entry \(anchor.seq) with the signed anchor in \(path): the log was rewritten or replaced"
                )
            }
        } else {
            throw .unusableDatabase(
                path: self.path,
                reason:
                    "its audit log (newest entry \(last)) lacks entry \(anchor.seq), which the signed anchor in \(path) records: entries were cut off, or an older copy of the database was put in place without `anonreg backup restore` (which records the restore in the log)"
            )
        }
        anchorState.withLock { $0.written = max($0.written, anchor.seq) }
        await refreshAuditAnchor()
    }

    /// Why the anchor could not be replaced the last time, if it could not.
    public var auditAnchorFailure: String? { anchorState.withLock { $0.failure } }
}

/// What the store knows of its anchor file.
struct AnchorState {
    /// `AuditAnchorTracker.checkpointsSigned` when the anchor was last refreshed.
    var seen = 0
    /// The checkpoint the anchor file holds.
    var written: Int64 = 0
    var failure: String?
}
