import RegistryProtocol

/// The errors of the storage seam, shared by every backend. No case carries a code, a handle,
/// a note or key bytes.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No case with that handle at this clinic (or no such case at all: the two look the same).
    case caseNotFound
    /// No subject holds that code (or the code is malformed).
    case codeNotFound
    /// A sealed record or wrapped key failed authentication: the database was tampered with.
    case tampered(what: String)
    /// A clear column failed its MAC, a subject's records are not the set its row names, or a
    /// subject named in the erasure ledger is back: the database was changed outside anonreg
    /// (docs/CRYPTO.md §Authenticated columns). Nothing of the row is served.
    case integrity(what: String)
    /// The KEK version a subject needs is not in the keyring (destroyed or missing).
    case keyUnavailable(version: Int)
    /// The database file is not an anonreg database, or is damaged. Never overwritten.
    case unusableDatabase(path: String, reason: String)
    /// The disk or file-size limit is full; nothing of the failed write was kept.
    case storageFull
    /// The subject changed after it was opened (`openForChange` → `commit`): nothing was written; open
    /// it again and decide again.
    case subjectChanged
    /// A month of a new statistics release has no privacy budget left: nothing was charged.
    case privacyBudgetSpent(message: String)
    /// The database cannot be reached now (a server down, a network cut, no connection within
    /// the wait): nothing was written, and the same request may succeed later (PostgreSQL).
    case unavailable(reason: String)
    /// The registry's primary KEK is a version this node's keyring lacks (another node rotated
    /// to it): writes are refused until it is installed (PostgreSQL, several nodes).
    case keyringBehind(version: Int)
    /// Any other database failure.
    case database(reason: String)

    public var description: String {
        switch self {
        case .caseNotFound: "no such case at this clinic"
        case .codeNotFound: "no subject holds that code"
        case .tampered(let what): "a sealed \(what) failed authentication; the database was modified outside anonreg"
        case .integrity(let what): "the \(what) failed its integrity check; the database was modified outside anonreg"
        case .keyUnavailable(let version): "KEK version \(version) is not in the keyring"
        case .unusableDatabase(let path, let reason): "\(path) cannot be used: \(reason). It was left untouched."
        case .storageFull: "the disk is full; the write was not stored"
        case .subjectChanged: "the subject changed after it was opened; nothing was written"
        case .privacyBudgetSpent(let message): message
        case .unavailable(let reason): "the database cannot be reached: \(reason)"
        case .keyringBehind(let version):
            "the registry's primary KEK is version \(version), which this node's keyring lacks: install it (docs/OPERATIONS.md §PostgreSQL and several nodes)"
        case .database(let reason): "database error: \(reason)"
        }
    }
}

extension StorageError {
    /// Tampering (`integrity`, `tampered`), as opposed to an operator problem (a missing KEK) or
    /// a database failure.
    public var isIntegrityFailure: Bool {
        switch self {
        case .integrity, .tampered: true
        default: false
        }
    }
}
