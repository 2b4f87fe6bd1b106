import RegistryCrypto
import RegistryFormats
import RegistryKeyring

/// One named schema step: its statements run in order, in the migration transaction.
struct PostgresMigration: Sendable {
    let name: String
    let statements: [String]
}

/// The PostgreSQL schema as named, append-only migrations (docs/STORAGE.md §PostgreSQL). Never
/// edit a migration that has shipped; add a new one.
///
/// The tables and their clear columns are those of the SQLite schema as its migrations leave it
/// today (`Sources/RegistryStore/Schema.swift`), with BYTEA for every sealed or keyed value and
/// every constraint in the schema. PostgreSQL starts at that schema, with no database of an
/// earlier layout to carry forward, so its history starts at `pg1-`: each migration is named
/// after the SQLite migration that created its tables and folds in the later SQLite migrations
/// that changed them (named in each comment). Nothing is dropped or overwritten here
/// (`linkage_hash` never existed on PostgreSQL).
enum PostgresSchema {
    /// The `pg_advisory_xact_lock` key every migration transaction takes first: the bytes of
    /// "ANRGMIGR" as a big-endian signed 64-bit integer (0x414E52474D494752 =
    /// 4705509516009670482). Two daemons starting at once serialise on it, and the second finds
    /// the first's migrations recorded.
    static let migrationLockKey: Int64 = 0x414E_5247_4D49_4752

    /// The table that records applied migrations, and the marker of an anonreg database: a
    /// database with tables but without it belongs to another application.
    static let migrationTable = "anonreg_migration"

    /// The sid's length (docs/CRYPTO.md §Envelope), from the formats both backends share.
    static let sidBytes = SubjectKeys.sidBytes

    static let dayPattern = "'^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'"
    static let monthPattern = "'^[0-9]{4}-(0[1-9]|1[0-2])$'"

    /// Creates the migration table itself, before the first migration, in the same transaction.
    static let migrationTableStatement = """
        CREATE TABLE \(migrationTable) (
            position INTEGER PRIMARY KEY CHECK (position >= 1),
            name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
            release TEXT NOT NULL CHECK (length(release) BETWEEN 1 AND 64),
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """

    /// The migrations, in order.
    static var migrations: [PostgresMigration] {
        let digest = KeyedHash.digestBytes
        let wrappedDEK = XChaCha20Poly1305.overheadBytes + XChaCha20Poly1305.keyBytes
        let overhead = XChaCha20Poly1305.overheadBytes
        let day = dayPattern
        let month = monthPattern
        return [
            // SQLite: v1-subjects-cases-records, with v4-row-macs (records, records_head, row_mac)
            // and without v4-drop-linkage-hash's column. Ids come from identity sequences, which
            // never reuse an id (a subject's stamp relies on that, docs/STORAGE.md §Changes).
            PostgresMigration(
                name: "pg1-subjects-cases-records",
                statements: [
                    """
                    CREATE TABLE subject (
                        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        sid BYTEA NOT NULL UNIQUE CHECK (octet_length(sid) = \(sidBytes)),
                        code_index BYTEA NOT NULL UNIQUE CHECK (octet_length(code_index) = \(digest)),
                        wrapped_dek BYTEA NOT NULL CHECK (octet_length(wrapped_dek) = \(wrappedDEK)),
                        kek_version INTEGER NOT NULL CHECK (kek_version >= 1),
                        status TEXT NOT NULL CHECK (status IN ('active', 'completed')),
                        next_due TEXT CHECK (next_due IS NULL OR next_due ~ \(day)),
                        review_on TEXT CHECK (review_on IS NULL OR review_on ~ \(day)),
                        records INTEGER NOT NULL DEFAULT 0 CHECK (records >= 0),
                        records_head BYTEA NOT NULL CHECK (octet_length(records_head) = \(digest)),
                        row_mac BYTEA NOT NULL CHECK (octet_length(row_mac) = \(digest))
                    )
                    """,
                    "CREATE INDEX subject_by_kek_version ON subject (kek_version)",
                    "CREATE INDEX subject_by_review_on ON subject (review_on) WHERE review_on IS NOT NULL",
                    """
                    CREATE TABLE case_link (
                        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        handle_index BYTEA NOT NULL UNIQUE CHECK (octet_length(handle_index) = \(digest)),
                        clinic TEXT NOT NULL CHECK (length(clinic) BETWEEN 1 AND 64),
                        subject_id BIGINT NOT NULL REFERENCES subject (id) ON DELETE CASCADE,
                        sealed_handle BYTEA NOT NULL CHECK (octet_length(sealed_handle) > \(overhead)),
                        row_mac BYTEA NOT NULL CHECK (octet_length(row_mac) = \(digest)),
                        UNIQUE (clinic, subject_id)
                    )
                    """,
                    "CREATE INDEX case_link_by_subject ON case_link (subject_id)",
                    """
                    CREATE TABLE record (
                        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        subject_id BIGINT NOT NULL REFERENCES subject (id) ON DELETE CASCADE,
                        kind TEXT NOT NULL CHECK (kind IN ('consent', 'episode', 'checkup', 'link')),
                        schema_version INTEGER NOT NULL CHECK (schema_version BETWEEN 1 AND 65535),
                        sealed BYTEA NOT NULL CHECK (octet_length(sealed) >= \(overhead))
                    )
                    """,
                    "CREATE INDEX record_by_subject ON record (subject_id, id)",
                ]),
            // SQLite: v1-counters.
            PostgresMigration(
                name: "pg1-counters",
                statements: [
                    """
                    CREATE TABLE counter (
                        month TEXT NOT NULL CHECK (month ~ \(month)),
                        category TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
                        clinic TEXT NOT NULL CHECK (length(clinic) BETWEEN 1 AND 64),
                        metric TEXT NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),
                        value BIGINT NOT NULL CHECK (value >= 0),
                        PRIMARY KEY (month, category, clinic, metric)
                    )
                    """
                ]),
            // SQLite: v1-audit, with v2-audit-subject-commitments (subject_commit, audit_subject)
            // and v4-audit-checkpoint-chain (format, previous, interval). The chain's `at` stays
            // TEXT: it is hashed as written (docs/CRYPTO.md §Audit).
            PostgresMigration(
                name: "pg1-audit",
                statements: [
                    """
                    CREATE TABLE audit_entry (
                        seq BIGINT PRIMARY KEY CHECK (seq >= 1),
                        at TEXT NOT NULL,
                        actor TEXT NOT NULL,
                        action TEXT NOT NULL,
                        result TEXT NOT NULL,
                        subject_commit BYTEA CHECK (subject_commit IS NULL OR octet_length(subject_commit) = \(digest)),
                        prev_hash BYTEA NOT NULL CHECK (octet_length(prev_hash) = \(digest)),
                        hash BYTEA NOT NULL CHECK (octet_length(hash) = \(digest))
                    )
                    """,
                    """
                    CREATE TABLE audit_checkpoint (
                        seq BIGINT PRIMARY KEY CHECK (seq >= 1),
                        hash BYTEA NOT NULL CHECK (octet_length(hash) = \(digest)),
                        at TEXT NOT NULL,
                        signature BYTEA NOT NULL CHECK (octet_length(signature) = \(Ed25519.signatureBytes)),
                        format INTEGER NOT NULL CHECK (format IN (1, 2)),
                        previous BIGINT CHECK (previous IS NULL OR previous >= 0),
                        interval INTEGER CHECK (interval IS NULL OR interval >= 1)
                    )
                    """,
                    """
                    CREATE TABLE audit_subject (
                        seq BIGINT PRIMARY KEY REFERENCES audit_entry (seq) ON DELETE CASCADE,
                        subject_ref BYTEA NOT NULL CHECK (octet_length(subject_ref) = \(digest)),
                        salt BYTEA CHECK (salt IS NULL OR octet_length(salt) = \(KeyedHash.keyBytes))
                    )
                    """,
                    "CREATE INDEX audit_subject_by_ref ON audit_subject (subject_ref)",
                ]),
            // SQLite: v2-statistics, with v4-privacy-budget-cap (cap_micro, privacy_setting).
            PostgresMigration(
                name: "pg1-statistics",
                statements: [
                    """
                    CREATE TABLE unique_person_seen (
                        month TEXT NOT NULL CHECK (month ~ \(month)),
                        category TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
                        tag BYTEA NOT NULL CHECK (octet_length(tag) = \(digest)),
                        PRIMARY KEY (month, category, tag)
                    )
                    """,
                    """
                    CREATE TABLE stats_release (
                        query TEXT PRIMARY KEY CHECK (length(query) BETWEEN 1 AND 512),
                        released_on TEXT NOT NULL CHECK (released_on ~ \(day)),
                        epsilon_micro BIGINT NOT NULL CHECK (epsilon_micro >= 1),
                        body BYTEA NOT NULL CHECK (octet_length(body) >= 2)
                    )
                    """,
                    """
                    CREATE TABLE privacy_budget (
                        month TEXT PRIMARY KEY CHECK (month ~ \(month)),
                        spent_micro BIGINT NOT NULL CHECK (spent_micro >= 0),
                        cap_micro BIGINT CHECK (cap_micro IS NULL OR cap_micro >= 1)
                    )
                    """,
                    """
                    CREATE TABLE privacy_setting (
                        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        recorded_on TEXT NOT NULL CHECK (recorded_on ~ \(day)),
                        privacy BOOLEAN NOT NULL,
                        epsilon_micro BIGINT NOT NULL CHECK (epsilon_micro >= 1),
                        budget_micro BIGINT NOT NULL CHECK (budget_micro >= 1)
                    )
                    """,
                ]),
            // SQLite: v3-erasure-ledger-head.
            PostgresMigration(
                name: "pg1-erasure-ledger-head",
                statements: [
                    """
                    CREATE TABLE erasure_ledger_head (
                        id SMALLINT PRIMARY KEY CHECK (id = 1),
                        entries BIGINT NOT NULL CHECK (entries >= 1),
                        head BYTEA NOT NULL CHECK (octet_length(head) = \(ErasureLedger.macBytes))
                    )
                    """
                ]),
            // SQLite: v4-keyring-binding. The table only: its one row is written by the store's
            // first open with a keyring (docs/CRYPTO.md §Authenticated columns).
            PostgresMigration(
                name: "pg1-keyring-binding",
                statements: [
                    """
                    CREATE TABLE keyring_binding (
                        id SMALLINT PRIMARY KEY CHECK (id = 1),
                        mac BYTEA NOT NULL CHECK (octet_length(mac) = \(digest))
                    )
                    """
                ]),
            // SQLite: v5-sealed-summary (docs/CRYPTO.md §Monitoring summary, docs/STORAGE.md
            // §Summary): the sealed summary, and the partial index the backfill walks.
            PostgresMigration(
                name: "pg2-sealed-summary",
                statements: [
                    """
                    ALTER TABLE subject ADD COLUMN summary BYTEA
                        CHECK (summary IS NULL OR octet_length(summary) BETWEEN \(overhead + 2) AND 65536)
                    """,
                    "CREATE INDEX subject_without_summary ON subject (id) WHERE summary IS NULL",
                ]),
            // PostgreSQL only (docs/STORAGE.md §Erasure on PostgreSQL): every node's erasures,
            // by their ledger reference, so that each node's ledger file beside its keyring
            // comes to name every erasure of the registry, whichever node made it.
            PostgresMigration(
                name: "pg3-erasure-ledger-entries",
                statements: [
                    """
                    CREATE TABLE erasure_ledger_entry (
                        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        reference BYTEA NOT NULL UNIQUE CHECK (octet_length(reference) = \(ErasureLedger.referenceBytes))
                    )
                    """
                ]),
            // PostgreSQL only (docs/STORAGE.md §Single-runner jobs): when any node last finished
            // each periodic job, so that the nodes together run it once per interval.
            PostgresMigration(
                name: "pg4-job-runs",
                statements: [
                    """
                    CREATE TABLE job_run (
                        job TEXT PRIMARY KEY CHECK (length(job) BETWEEN 1 AND 64),
                        finished_at TIMESTAMPTZ NOT NULL
                    )
                    """
                ]),
            // PostgreSQL only (docs/STORAGE.md §Keys on several nodes): the registry's primary KEK
            // version, which every node wraps new data keys under; a node whose keyring lacks it
            // refuses writes (`keyring_behind`).
            PostgresMigration(
                name: "pg5-kek-primary",
                statements: [
                    """
                    CREATE TABLE kek_primary (
                        id SMALLINT PRIMARY KEY CHECK (id = 1),
                        version INTEGER NOT NULL CHECK (version >= 1)
                    )
                    """
                ]),
            // PostgreSQL only (docs/STORAGE.md §Keys on several nodes): the key check
            // (docs/CRYPTO.md §Key checks) of every KEK version a node has wrapped data keys
            // under, written by the first one. A node whose key of that number has another check
            // (it rotated on its own) never wraps under it, never records a newer primary, and
            // never erases a subject whose data key its key fails to open.
            PostgresMigration(
                name: "pg6-kek-checks",
                statements: [
                    """
                    CREATE TABLE kek_check (
                        version INTEGER PRIMARY KEY CHECK (version >= 1),
                        key_check TEXT NOT NULL CHECK (key_check ~ '^[0-9a-f]{\(2 * KeyringManifest.keyCheckBytes)}$')
                    )
                    """
                ]),
        ]
    }

    /// The names of every migration, in order.
    static var migrationNames: [String] { migrations.map(\.name) }
}
