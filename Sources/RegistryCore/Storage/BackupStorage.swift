/// Online backups (docs/CRYPTO.md §Database backups): a consistent, signed copy of what the
/// backend holds, streamed to the admin. The backend writes at most a temporary copy in its
/// own state, already unlinked while it is sent.
public protocol BackupStorage: Sendable {
    /// Takes a consistent copy now and returns it as a stream: the signed header, then the
    /// payload and the erasure ledger's section.
    func prepareBackup() async throws(StorageError) -> any BackupStream
}

/// A prepared backup being sent: its header bytes first, then chunks until an empty one.
public protocol BackupStream: AnyObject, Sendable {
    /// Subjects in the copy (for the log line; the header says the same, signed).
    var subjects: Int { get }
    /// Every byte the stream will send, header included (the response's Content-Length).
    var totalBytes: Int64 { get }
    /// The signed header.
    var headerBytes: [UInt8] { get }
    /// The next chunk of at most `maxBytes` after the header; empty at the end.
    func nextChunk(maxBytes: Int) throws(StorageError) -> [UInt8]
}
