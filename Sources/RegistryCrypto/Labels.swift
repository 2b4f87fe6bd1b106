/// Domain-separation labels. Every label anonreg feeds into a hash, a KDF or associated data is
/// named here, once, and listed in docs/CRYPTO.md §Labels. Changing one is a format change.
public enum Label {
    /// Associated-data prefix of a sealed record (docs/CRYPTO.md §Records).
    public static let record = "anonreg/v1/record"
    /// Associated-data prefix of a subject's sealed monitoring summary (docs/CRYPTO.md
    /// §Monitoring summary).
    public static let summary = "anonreg/v1/summary"
    /// Associated-data prefix of a DEK wrapped by a KEK (docs/CRYPTO.md §Envelope).
    public static let dekWrap = "anonreg/v1/dek-wrap"
    /// Associated-data prefix of a passphrase-sealed key file (docs/CRYPTO.md §Keyring).
    public static let keyFile = "anonreg/v1/key-file"
    /// Keyed-hash personalisation of the patient-code index (docs/CRYPTO.md §Pseudonyms).
    public static let codeIndex = "anonreg/v1/code-index"
    /// Keyed-hash personalisation of the linkage hash (docs/CRYPTO.md §Pseudonyms, §Unique
    /// persons). Computed in memory only, as the input of an open month's unique-person tag; no
    /// per-subject value derived from it is stored.
    public static let linkageHash = "anonreg/v1/linkage-hash"
    /// Keyed-hash personalisation of key check values in keyring.json (docs/CRYPTO.md §Keyring).
    public static let keyCheck = "anonreg/v1/key-check"
    /// Prefix of every canonical audit entry in the hash chain (docs/CRYPTO.md §Audit).
    public static let auditEntry = "anonreg/v1/audit-entry"
    /// Prefix of every signed audit checkpoint (docs/CRYPTO.md §Audit).
    public static let auditCheckpoint = "anonreg/v1/audit-checkpoint"
    /// Keyed-hash personalisation of case-handle lookups (docs/CRYPTO.md §Pseudonyms).
    public static let caseHandle = "anonreg/v1/case-handle"
    /// Keyed-hash personalisation of audit subject references (docs/CRYPTO.md §Audit).
    public static let auditSubject = "anonreg/v1/audit-subject"
    /// Keyed-hash personalisation of the salted subject commitment an audit entry carries
    /// (docs/CRYPTO.md §Audit).
    public static let auditSubjectCommit = "anonreg/v1/audit-subject-commit"
    /// Keyed-hash personalisation of an open month's unique-person tag (docs/CRYPTO.md §Unique
    /// persons).
    public static let uniquePersonTag = "anonreg/v1/unique-person-tag"

    /// Keyed-hash personalisation of the erasure ledger's chained entry MACs:
    /// mac_i = keyed-hash(ledger key, mac_{i-1} ‖ ref_i) (docs/CRYPTO.md §Erasure ledger).
    public static let erasureLedgerChain = "anonreg/v1/erasure-ledger-chain"
    /// Keyed-hash personalisation of an erased subject's ledger reference (docs/CRYPTO.md §Erasure ledger).
    public static let erasureLedgerEntry = "anonreg/v1/erasure-ledger-entry"
    /// Prefix of the payload checksum of a database backup (docs/CRYPTO.md §Database backups).
    public static let backupPayload = "anonreg/v1/backup-payload"
    /// Associated-data prefix of a passphrase-sealed keyring backup (docs/CRYPTO.md §Keyring backups).
    public static let keyringBackup = "anonreg/v1/keyring-backup"
    /// Keyed-hash personalisation of a subject row's MAC over its clear columns
    /// (docs/CRYPTO.md §Authenticated columns).
    public static let subjectRow = "anonreg/v1/subject-row"
    /// Keyed-hash personalisation of a case link row's MAC (docs/CRYPTO.md §Authenticated columns).
    public static let caseLinkRow = "anonreg/v1/case-link-row"
    /// Keyed-hash personalisation of the database's binding to its keyring's row MAC key
    /// (docs/CRYPTO.md §Authenticated columns).
    public static let keyringBinding = "anonreg/v1/keyring-binding"
    /// Keyed-hash personalisation of one step of a subject's record chain (docs/CRYPTO.md
    /// §Authenticated columns).
    public static let recordChain = "anonreg/v1/record-chain"
    /// Prefix of a version-2 signed audit checkpoint, which also signs the previous checkpoint
    /// and the checkpoint interval (docs/CRYPTO.md §Audit).
    public static let auditCheckpointV2 = "anonreg/v2/audit-checkpoint"
    /// Prefix of the signed header of a database backup (docs/CRYPTO.md §Database backups).
    public static let backupHeader = "anonreg/v2/backup-header"
    /// Prefix of the checksum of a database backup's ledger section (docs/CRYPTO.md §Database
    /// backups).
    public static let backupLedger = "anonreg/v2/backup-ledger"
    /// The bytes of a label, for hashing.
    public static func bytes(_ label: String) -> [UInt8] { Array(label.utf8) }
}

/// A `crypto_kdf` context: exactly `crypto_kdf_CONTEXTBYTES` (8) ASCII bytes.
/// The named contexts are listed in docs/CRYPTO.md §Subkeys.
public struct KDFContext: Sendable, Equatable {
    public let bytes: [UInt8]

    public init(_ text: StaticString) {
        let bytes = text.withUTF8Buffer { Array($0) }
        precondition(bytes.count == KDF.contextBytes, "a crypto_kdf context is \(KDF.contextBytes) bytes")
        self.bytes = bytes
    }

    /// Subkey of the index key that keys the patient-code index.
    public static let codeIndex = KDFContext("ANRGcidx")
    /// Subkey of the index key that keys the linkage hash.
    public static let linkageHash = KDFContext("ANRGlink")
    /// Subkey of the index key that keys audit subject references.
    public static let auditSubject = KDFContext("ANRGaudt")
    /// Subkey of the linkage key for one month's unique-person tags (subkey id = year·12 + month − 1).
    public static let uniquePersonMonth = KDFContext("ANRGumon")
    /// Subkey of the passphrase key that seals key files.
    public static let keyFileSealing = KDFContext("ANRGkfil")
    /// Subkey of the index key that MACs erasure-ledger entries.
    public static let erasureLedger = KDFContext("ANRGledg")
    /// Subkey of the index key that MACs the clear columns of subject and case rows.
    public static let rowMAC = KDFContext("ANRGrmac")
    /// Subkey of the backup passphrase key that seals a keyring backup.
    public static let keyringBackup = KDFContext("ANRGkbak")
}
