import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring

/// The audit anchor beside each node's keyring (docs/CRYPTO.md §Audit, "Anchor"): the newest
/// signed checkpoint of the one chain this node has seen. A node replaces it after its own
/// checkpoints and every few minutes with any node's (`refreshAuditAnchor`), so every node's
/// anchor follows the shared chain. At start, the chain in the database must reach the node's
/// anchor and agree with it there: a chain cut short or rolled back to an older copy without
/// saying so is refused.
extension PostgresStore {
    /// Replaces this node's anchor with the chain's newest version-2 checkpoint, if newer. A
    /// failure (disk full) leaves the older anchor, which the chain still extends, and is
    /// logged; the next refresh tries again.
    ///
    /// The database is not trusted here (a database administrator is an attacker): the
    /// checkpoint becomes the anchor only if its signature verifies with this keyring's audit
    /// key and its hash is the hash of the chain's entry at its seq. A forged checkpoint (a
    /// huge seq, a zero signature) never reaches the anchor; it is logged.
    func refreshAuditAnchor() async {
        let logger = self.logger
        let publicKey = keyring.auditSigningKey.publicKey
        let newest: (AuditChain.Checkpoint, [UInt8]?)?
        do {
            newest = try await read { connection in
                guard
                    let checkpoint = try await Self.checkpoints(
                        connection, after: -1, through: .max, format: 2, newestOnly: true, logger: logger
                    ).first
                else { return nil }
                let entry = try await connection.row("SELECT hash FROM audit_entry WHERE seq = \(checkpoint.seq)", logger: logger)
                return (checkpoint, try entry.map { try $0.makeRandomAccess()[0].bytes() })
            }
        } catch {
            return
        }
        guard let (checkpoint, entryHash) = newest, let anchor = checkpoint.anchor else { return }
        guard checkpoint.verify(publicKey: publicKey), let entryHash, entryHash == checkpoint.hash else {
            logger.critical(
                "the newest audit checkpoint in the database does not verify against the chain and the audit key: it was forged or altered outside anonreg; the anchor is not moved",
                metadata: ["seq": "\(checkpoint.seq)"])
            return
        }
        let directory = keyring.source.directory
        if let current = try? AuditChain.Checkpoint.anchor(in: directory), current.seq >= anchor.seq { return }
        do { try anchor.write(directory: directory) } catch {
            logger.error("could not replace the audit anchor", metadata: ["error": "\(error)"])
        }
    }

    /// At start: the chain must reach this node's anchor and agree with it there. A chain ahead
    /// of the anchor (checkpoints made while this node was down) catches the anchor up.
    public func checkAuditAnchor() async throws(StorageError) {
        let directory = keyring.source.directory
        guard let anchor = try AuditChain.Checkpoint.anchor(in: directory) else {
            await refreshAuditAnchor()
            return
        }
        let path = directory + "/" + AuditAnchor.fileName
        guard anchor.verify(publicKey: keyring.auditSigningKey.publicKey) else {
            throw .unusableDatabase(path: path, reason: "the audit anchor's signature does not verify with this keyring's audit key")
        }
        // A restore recorded by `anonregd --record-restore` (PostgresStore+AuditRestore.swift),
        // signed and continuing after this node's anchor: the anchor follows it.
        if try await signedRestore(after: anchor.seq) != nil {
            await refreshAuditAnchor()
            return
        }
        let logger = self.logger
        let (entryHash, checkpointHash, last) = try await read { connection in
            let entry = try await connection.row("SELECT hash FROM audit_entry WHERE seq = \(anchor.seq)", logger: logger)
            let checkpoint = try await connection.row("SELECT hash FROM audit_checkpoint WHERE seq = \(anchor.seq)", logger: logger)
            let last = try await connection.row("SELECT coalesce(max(seq), 0) FROM audit_entry", logger: logger)?.decode(Int64.self) ?? 0
            return (
                try entry.map { try $0.makeRandomAccess()[0].bytes() }, try checkpoint.map { try $0.makeRandomAccess()[0].bytes() }, last
            )
        }
        let database = "PostgreSQL database \"\(config.database)\""
        guard let hash = entryHash ?? checkpointHash else {
            throw .unusableDatabase(
                path: database,
                reason:
                    "its audit log (newest entry \(last)) lacks entry \(anchor.seq), which the signed anchor in \(path) records: entries were cut off, or the database was restored from an older copy without `anonregd --record-restore` (docs/OPERATIONS.md §PostgreSQL and several nodes, \"Restoring\")"
            )
        }
        // The chain must reach the anchor: a chain cut below it whose checkpoint row at the
        // anchor was kept would otherwise pass on the checkpoint's hash alone.
        guard last >= anchor.seq else {
            throw .unusableDatabase(
                path: database,
                reason:
                    "its audit log ends at entry \(last), before entry \(anchor.seq), which the signed anchor in \(path) records: entries were cut off"
            )
        }
        guard hash == anchor.hash else {
            throw .unusableDatabase(
                path: database,
                reason:
                    "its audit log disagrees at entry \(anchor.seq) with the signed anchor in \(path): the log was rewritten or replaced")
        }
        await refreshAuditAnchor()
    }
}
