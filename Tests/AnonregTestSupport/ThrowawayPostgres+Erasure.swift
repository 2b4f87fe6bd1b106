/// The relations whose files may hold an erased subject's bytes (docs/STORAGE.md §Erasure on
/// PostgreSQL): `subject`, `case_link` and `record`, their TOAST tables (sealed values stored
/// out of line), and the indexes of all of them. One query prints each one's file path,
/// relative to the data directory.
public enum PostgresErasureRelations {
    public static let filePaths = """
        WITH base AS (SELECT oid FROM pg_class WHERE oid IN ('subject'::regclass, 'case_link'::regclass, 'record'::regclass)),
             rel AS (SELECT oid FROM base UNION SELECT reltoastrelid FROM pg_class WHERE oid IN (SELECT oid FROM base) AND reltoastrelid <> 0)
        SELECT pg_relation_filepath(c.oid) FROM pg_class c
        WHERE c.oid IN (SELECT oid FROM rel) OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM rel));
        """
}
