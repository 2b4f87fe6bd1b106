import Foundation
import GRDB
import RegistryCrypto

/// The database schema as named, append-only migrations. Never edit a migration that has
/// shipped; add a new one. Constraints say what the code assumes (GRDB: "trust SQLite more than
/// yourself"). The only clear columns are those queries need: status, due and review dates,
/// clinic id and KEK version; everything about a person is in sealed blobs.
enum Schema {
    /// `PRAGMA application_id`: "ANRG". A database with another id is refused, never adopted.
    static let applicationID: Int32 = 0x414E_5247

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        let wrappedDEK = XChaCha20Poly1305.overheadBytes + XChaCha20Poly1305.keyBytes
        let digest = KeyedHash.digestBytes
        let dayPattern = "'[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'"

        migrator.registerMigration("v1-subjects-cases-records") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(sql: """
                CREATE TABLE subject (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    sid BLOB NOT NULL UNIQUE CHECK (length(sid) = \(SubjectKeys.sidBytes)),
                    code_index BLOB NOT NULL UNIQUE CHECK (length(code_index) = \(digest)),
                    wrapped_dek BLOB NOT NULL CHECK (length(wrapped_dek) = \(wrappedDEK)),
                    kek_version INTEGER NOT NULL CHECK (kek_version >= 1),
                    linkage_hash BLOB CHECK (linkage_hash IS NULL OR length(linkage_hash) = \(digest)),
                    status TEXT NOT NULL CHECK (status IN ('active', 'completed')),
                    next_due TEXT CHECK (next_due IS NULL OR next_due GLOB \(dayPattern)),
                    review_on TEXT CHECK (review_on IS NULL OR review_on GLOB \(dayPattern))
                );
                CREATE INDEX subject_by_kek_version ON subject(kek_version);
                CREATE INDEX subject_by_review_on ON subject(review_on) WHERE review_on IS NOT NULL;

                CREATE TABLE case_link (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    handle_index BLOB NOT NULL UNIQUE CHECK (length(handle_index) = \(digest)),
                    clinic TEXT NOT NULL CHECK (length(clinic) BETWEEN 1 AND 64),
                    subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                    sealed_handle BLOB NOT NULL CHECK (length(sealed_handle) > \(XChaCha20Poly1305.overheadBytes)),
                    UNIQUE (clinic, subject_id)
                );
                CREATE INDEX case_link_by_subject ON case_link(subject_id);

                CREATE TABLE record (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    subject_id INTEGER NOT NULL REFERENCES subject(id) ON DELETE CASCADE,
                    kind TEXT NOT NULL CHECK (kind IN ('consent', 'episode', 'checkup', 'link')),
                    schema_version INTEGER NOT NULL CHECK (schema_version BETWEEN 1 AND 65535),
                    sealed BLOB NOT NULL CHECK (length(sealed) >= \(XChaCha20Poly1305.overheadBytes))
                );
                CREATE INDEX record_by_subject ON record(subject_id, id);
                """)
        }

        migrator.registerMigration("v1-counters") { db in
            try db.execute(sql: """
                CREATE TABLE counter (
                    month TEXT NOT NULL CHECK (month GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]'),
                    category TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
                    clinic TEXT NOT NULL CHECK (length(clinic) BETWEEN 1 AND 64),
                    metric TEXT NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
                    value INTEGER NOT NULL CHECK (value >= 0),
                    PRIMARY KEY (month, category, clinic, metric)
                ) WITHOUT ROWID;
                """)
        }

        migrator.registerMigration("v1-audit") { db in
            // Filled by the audit log (hash chain + signed checkpoints, docs/CRYPTO.md §Audit).
            try db.execute(sql: """
                CREATE TABLE audit_entry (
                    seq INTEGER PRIMARY KEY CHECK (seq >= 1),
                    at TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    result TEXT NOT NULL,
                    subject_ref BLOB CHECK (subject_ref IS NULL OR length(subject_ref) = \(digest)),
                    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = \(digest)),
                    hash BLOB NOT NULL CHECK (length(hash) = \(digest))
                );
                CREATE INDEX audit_entry_by_subject ON audit_entry(subject_ref) WHERE subject_ref IS NOT NULL;

                CREATE TABLE audit_checkpoint (
                    seq INTEGER PRIMARY KEY CHECK (seq >= 1),
                    hash BLOB NOT NULL CHECK (length(hash) = \(digest)),
                    at TEXT NOT NULL,
                    signature BLOB NOT NULL CHECK (length(signature) = \(Ed25519.signatureBytes))
                );
                """)
        }

        migrator.registerMigration("v2-audit-subject-commitments") { db in
            // Entries now carry a salted commitment to the subject reference; the reference and
            // salt live in audit_subject, which erasure empties for the subject, so an erased
            // subject's entries can no longer be linked to one another (docs/CRYPTO.md §Audit).
            // Entries written before this migration hold the bare reference in the chain; their
            // link rows have no salt, and erasure still deletes those.
            try db.execute(sql: """
                ALTER TABLE audit_entry RENAME COLUMN subject_ref TO subject_commit;
                DROP INDEX audit_entry_by_subject;
                CREATE TABLE audit_subject (
                    seq INTEGER PRIMARY KEY REFERENCES audit_entry(seq) ON DELETE CASCADE,
                    subject_ref BLOB NOT NULL CHECK (length(subject_ref) = \(digest)),
                    salt BLOB CHECK (salt IS NULL OR length(salt) = \(KeyedHash.keyBytes))
                );
                CREATE INDEX audit_subject_by_ref ON audit_subject(subject_ref);
                INSERT INTO audit_subject (seq, subject_ref, salt)
                    SELECT seq, subject_commit, NULL FROM audit_entry WHERE subject_commit IS NOT NULL;
                """)
        }

        migrator.registerMigration("v2-statistics") { db in
            // docs/STORAGE.md §Statistics, docs/CRYPTO.md §Unique persons, §Differential privacy.
            let monthPattern = "'[0-9][0-9][0-9][0-9]-[0-1][0-9]'"
            try db.execute(sql: """
                CREATE TABLE unique_person_seen (
                    month TEXT NOT NULL CHECK (month GLOB \(monthPattern)),
                    category TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
                    tag BLOB NOT NULL CHECK (length(tag) = \(digest)),
                    PRIMARY KEY (month, category, tag)
                ) WITHOUT ROWID;

                CREATE TABLE stats_release (
                    query TEXT PRIMARY KEY CHECK (length(query) BETWEEN 1 AND 512),
                    released_on TEXT NOT NULL CHECK (released_on GLOB \(dayPattern)),
                    epsilon_micro INTEGER NOT NULL CHECK (epsilon_micro >= 1),
                    body BLOB NOT NULL CHECK (length(body) >= 2)
                );

                CREATE TABLE privacy_budget (
                    month TEXT PRIMARY KEY CHECK (month GLOB \(monthPattern)),
                    spent_micro INTEGER NOT NULL CHECK (spent_micro >= 0)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v3-erasure-ledger-head") { db in
            // docs/CRYPTO.md §Erasure ledger: how far the ledger beside the keyring went at the
            // last erasure (entries and chain head), written in the erasure's transaction, so a
            // ledger cut short, replaced or lost is caught at start and at restore.
            try db.execute(sql: """
                CREATE TABLE erasure_ledger_head (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    entries INTEGER NOT NULL CHECK (entries >= 1),
                    head BLOB NOT NULL CHECK (length(head) = 16)
                );
                """)
        }
        migrator.registerMigration("v4-schema-release") { db in
            // docs/OPERATIONS.md §Upgrading: which release first found each migration applied,
            // so that an older anonreg can say which release wrote a schema it does not know.
            try db.execute(sql: """
                CREATE TABLE schema_release (
                    migration TEXT PRIMARY KEY CHECK (length(migration) BETWEEN 1 AND 200),
                    release TEXT NOT NULL CHECK (length(release) BETWEEN 1 AND 64)
                ) WITHOUT ROWID;
                """)
        }
        return migrator
    }
}
