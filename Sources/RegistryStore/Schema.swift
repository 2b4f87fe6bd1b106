import Foundation
internal import GRDB
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring

/// The database schema as named, append-only migrations. Never edit a migration that has
/// shipped; add a new one. Constraints say what the code assumes (GRDB: "trust SQLite more than
/// yourself"). The only clear columns are those queries need: status, due and review dates,
/// clinic id and KEK version; everything about a person is in sealed blobs.
enum Schema {
    /// `PRAGMA application_id`: "ANRG". A database with another id is refused, never adopted.
    static let applicationID: Int32 = 0x414E_5247

    /// The migrations, in order. Those that must compute keyed values for existing rows (the
    /// row MACs) need `keyring`; without one they refuse a database that has such rows (an empty
    /// database, as `checkSchema` builds to compare schemas, needs none).
    static func migrator(keyring: Keyring?) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        let wrappedDEK = XChaCha20Poly1305.overheadBytes + XChaCha20Poly1305.keyBytes
        let digest = KeyedHash.digestBytes
        let dayPattern = "'[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'"

        migrator.registerMigration("v1-subjects-cases-records") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(
                sql: """
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
            try db.execute(
                sql: """
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
            try db.execute(
                sql: """
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
            try db.execute(
                sql: """
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
            try db.execute(
                sql: """
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
            try db.execute(
                sql: """
                    CREATE TABLE erasure_ledger_head (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        entries INTEGER NOT NULL CHECK (entries >= 1),
                        head BLOB NOT NULL CHECK (length(head) = 16)
                    );
                    """)
        }
        migrator.registerMigration("v4-drop-linkage-hash") { db in
            // docs/CRYPTO.md §Pseudonyms: nothing stored per subject derives from the identity.
            // The per-subject linkage hash grouped one person's subjects across clinics for a
            // disk thief, and made the registry name-searchable for a key holder. The values
            // are overwritten first (secure_delete zeroes the freed cells), then the column goes;
            // the store truncates the WAL after migrating (SQLiteRegistryStore.init).
            try db.execute(
                sql: """
                    UPDATE subject SET linkage_hash = NULL WHERE linkage_hash IS NOT NULL;
                    ALTER TABLE subject DROP COLUMN linkage_hash;
                    """)
        }
        migrator.registerMigration("v4-row-macs") { db in
            // docs/CRYPTO.md §Authenticated columns: every clear value that selects a row or
            // drives a decision is MACed with its row's identity. Existing rows get their MACs
            // here, in the migration's transaction, from their values as they are now.
            let zeros = "x'" + String(repeating: "00", count: digest) + "'"
            try db.execute(
                sql: """
                    ALTER TABLE subject ADD COLUMN records INTEGER NOT NULL DEFAULT 0 CHECK (records >= 0);
                    ALTER TABLE subject ADD COLUMN records_head BLOB NOT NULL DEFAULT \(zeros) CHECK (length(records_head) = \(digest));
                    ALTER TABLE subject ADD COLUMN row_mac BLOB NOT NULL DEFAULT \(zeros) CHECK (length(row_mac) = \(digest));
                    ALTER TABLE case_link ADD COLUMN row_mac BLOB NOT NULL DEFAULT \(zeros) CHECK (length(row_mac) = \(digest));
                    """)
            let subjects = try Int.fetchOne(db, sql: "SELECT count(*) FROM subject") ?? 0
            guard subjects > 0 else { return }
            guard let keyring else {
                throw StorageError.database(reason: "migration v4-row-macs needs the keyring to authenticate existing rows")
            }
            try RowIntegrity.authenticateExistingRows(db, keyring: keyring)
        }
        migrator.registerMigration("v4-audit-checkpoint-chain") { db in
            // docs/CRYPTO.md §Audit: a version-2 checkpoint also signs the checkpoint before it and
            // the interval the daemon checkpoints at; version-1 rows (from earlier releases) keep
            // their signature over (seq, hash, at) alone.
            try db.execute(
                sql: """
                    ALTER TABLE audit_checkpoint ADD COLUMN format INTEGER NOT NULL DEFAULT 1 CHECK (format IN (1, 2));
                    ALTER TABLE audit_checkpoint ADD COLUMN previous INTEGER CHECK (previous IS NULL OR previous >= 0);
                    ALTER TABLE audit_checkpoint ADD COLUMN interval INTEGER CHECK (interval IS NULL OR interval >= 1);
                    """)
        }
        migrator.registerMigration("v4-keyring-binding") { db in
            // docs/CRYPTO.md §Authenticated columns: the database names the keyring it goes with
            // (a MAC of a constant under the row MAC key), so a daemon started with another
            // keyring refuses to start rather than find every row failing its MAC and erase them.
            try db.execute(
                sql: """
                    CREATE TABLE keyring_binding (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        mac BLOB NOT NULL CHECK (length(mac) = \(digest))
                    );
                    """)
            if let keyring {
                try db.execute(
                    sql: "INSERT INTO keyring_binding (id, mac) VALUES (1, ?)", arguments: [Data(try RowIntegrity.keyringBinding(keyring))])
            }
        }
        migrator.registerMigration("v4-privacy-budget-cap") { db in
            // docs/CRYPTO.md §Differential privacy: a month's budget is the one configured when
            // its first noisy figure was released (`cap_micro`, NULL for months charged before
            // this migration: their cap is set by the next charge), and the privacy settings in
            // force are kept as a history, each change also audited (`privacy-settings`).
            try db.execute(
                sql: """
                    ALTER TABLE privacy_budget ADD COLUMN cap_micro INTEGER CHECK (cap_micro IS NULL OR cap_micro >= 1);
                    CREATE TABLE privacy_setting (
                        seq INTEGER PRIMARY KEY,
                        recorded_on TEXT NOT NULL CHECK (recorded_on GLOB \(dayPattern)),
                        privacy INTEGER NOT NULL CHECK (privacy IN (0, 1)),
                        epsilon_micro INTEGER NOT NULL CHECK (epsilon_micro >= 1),
                        budget_micro INTEGER NOT NULL CHECK (budget_micro >= 1)
                    );
                    """)
        }
        migrator.registerMigration("v4-schema-release") { db in
            // docs/OPERATIONS.md §Upgrading: which release first found each migration applied,
            // so that an older anonreg can say which release wrote a schema it does not know.
            try db.execute(
                sql: """
                    CREATE TABLE schema_release (
                        migration TEXT PRIMARY KEY CHECK (length(migration) BETWEEN 1 AND 200),
                        release TEXT NOT NULL CHECK (length(release) BETWEEN 1 AND 64)
                    ) WITHOUT ROWID;
                    """)
        }
        migrator.registerMigration("v5-sealed-summary") { db in
            // docs/CRYPTO.md §Monitoring summary, docs/STORAGE.md §Summary: each subject's
            // monitoring summary, sealed under its DEK, so that status reads and check-ups need
            // not open the whole history. Existing subjects get theirs from the online backfill
            // (`SummaryBackfill`), which finds them by the partial index; until then they are
            // read from their history, as before.
            try db.execute(
                sql: """
                    ALTER TABLE subject ADD COLUMN summary BLOB
                        CHECK (summary IS NULL OR length(summary) BETWEEN \(XChaCha20Poly1305.overheadBytes + 2) AND 65536);
                    CREATE INDEX subject_without_summary ON subject(id) WHERE summary IS NULL;
                    """)
        }
        return migrator
    }

    /// The names of every migration, in order.
    static var migrationNames: [String] { migrator(keyring: nil).migrations }
}
