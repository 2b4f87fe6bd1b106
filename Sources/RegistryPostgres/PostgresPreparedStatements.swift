import Logging
internal import NIOCore
internal import PostgresNIO

/// The statements every status read and check-up sends, prepared once per connection: the
/// server parses and plans them once, not on every call (docs/STORAGE.md §Transactions and
/// locks, "Prepared statements"). PostgresNIO keeps each connection's prepared statements by
/// name and prepares one the first time the connection runs it. The SQL is fixed text and
/// every value is a parameter, as for every other statement of the store.
protocol HotStatement: PostgresPreparedStatement where Row == PostgresRow {}

extension HotStatement {
    static var name: String { "anonreg_" + String(describing: Self.self) }
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// A lookup by a clinic's case handle: its keyed index and the clinic are `$1` and `$2`.
protocol CaseHandleStatement: HotStatement {
    var handleIndex: [UInt8] { get }
    var clinic: String { get }
}

extension CaseHandleStatement {
    func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: 2)
        binds.append(handleIndex.bytea)
        binds.append(clinic)
        return binds
    }
}

/// The subject behind a clinic's handle with its records' extent and its case links' extent
/// (the stamp): `PostgresStore.subjectWithExtent` reads its row.
struct SubjectWithExtentStatement: CaseHandleStatement {
    static let sql = """
        SELECT \(PostgresSubjectRow.selectColumns), \(PostgresCaseLinkRow.selectColumns), r.n, r.newest, l.n, l.newest
        FROM case_link c JOIN subject s ON s.id = c.subject_id
        CROSS JOIN LATERAL (SELECT count(*), max(id) FROM record WHERE subject_id = s.id) r (n, newest)
        CROSS JOIN LATERAL (SELECT count(*), max(id) FROM case_link WHERE subject_id = s.id) l (n, newest)
        WHERE c.handle_index = $1 AND c.clinic = $2
        """
    var handleIndex: [UInt8]
    var clinic: String
}

/// The subject behind a clinic's handle, with its case link, the subject row locked
/// (`PostgresStore.subject(_:handleIndex:clinic:forUpdate:)`).
struct SubjectForUpdateStatement: CaseHandleStatement {
    static let sql = """
        SELECT \(PostgresSubjectRow.selectColumns), \(PostgresCaseLinkRow.selectColumns)
        FROM case_link c JOIN subject s ON s.id = c.subject_id
        WHERE c.handle_index = $1 AND c.clinic = $2 FOR UPDATE OF s
        """
    var handleIndex: [UInt8]
    var clinic: String
}

/// A subject's stamp and `count` new record ids (`PostgresSubjectRow.stamp(_:drawing:)`).
struct StampStatement: HotStatement {
    static let sql = """
        SELECT (SELECT max(id) FROM record WHERE subject_id = $1), (SELECT count(*) FROM record WHERE subject_id = $1),
               (SELECT max(id) FROM case_link WHERE subject_id = $1), (SELECT count(*) FROM case_link WHERE subject_id = $1),
               ARRAY(SELECT nextval(pg_get_serial_sequence('record', 'id')) FROM generate_series(1, $2))
        """
    var subject: Int64
    var count: Int32

    func makeBindings() throws -> PostgresBindings {
        var binds = PostgresBindings(capacity: 2)
        binds.append(subject)
        binds.append(count)
        return binds
    }
}

/// One audit entry (`PostgresStore.appendChained`), without a link to a subject.
struct AuditEntryStatement: HotStatement {
    static let sql = """
        INSERT INTO audit_entry (seq, at, actor, action, result, subject_commit, prev_hash, hash)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """
    var entry: AuditEntryValues

    func makeBindings() throws -> PostgresBindings { entry.bindings(capacity: 8) }
}

/// One audit entry and its link to the subject's reference, the link inserted only if the
/// write holds the subject's row (`$11`) or the subject row still exists.
struct LinkedAuditEntryStatement: HotStatement {
    static let sql = """
        WITH entry AS (
            INSERT INTO audit_entry (seq, at, actor, action, result, subject_commit, prev_hash, hash)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            RETURNING seq)
        INSERT INTO audit_subject (seq, subject_ref, salt)
        SELECT seq, $9, $10 FROM entry
        WHERE $11 OR EXISTS (SELECT 1 FROM subject WHERE sid = $12)
        """
    var entry: AuditEntryValues
    var reference: [UInt8]
    var salt: [UInt8]
    var known: Bool
    var subjectKey: [UInt8]?

    func makeBindings() throws -> PostgresBindings {
        var binds = entry.bindings(capacity: 12)
        binds.append(reference.bytea)
        binds.append(salt.bytea)
        binds.append(known)
        binds.append(subjectKey?.bytea ?? ByteBuffer())
        return binds
    }
}

/// The columns of one audit entry, in the statements' order.
struct AuditEntryValues: Sendable {
    var seq: Int64
    var at: String
    var actor: String
    var action: String
    var result: String
    var subjectCommit: [UInt8]?
    var previous: [UInt8]
    var hash: [UInt8]

    func bindings(capacity: Int) -> PostgresBindings {
        var binds = PostgresBindings(capacity: capacity)
        binds.append(seq)
        binds.append(at)
        binds.append(actor)
        binds.append(action)
        binds.append(result)
        binds.append(subjectCommit?.bytea)
        binds.append(previous.bytea)
        binds.append(hash.bytea)
        return binds
    }
}

extension PostgresConnection {
    /// Every row of a prepared statement, raced against the connection's close and read to
    /// their end, as `rows(_:logger:)` does for a query.
    func rows<Statement: HotStatement>(_ statement: Statement, logger: Logger) async throws -> [PostgresRow] {
        try requireOpen()
        return try await ConnectionCloseWatch.shared.run(on: self) {
            var rows: [PostgresRow] = []
            for try await row in try await self.execute(statement, logger: logger) { rows.append(row) }
            return rows
        }
    }

    /// The first row of a prepared statement, if any.
    func row<Statement: HotStatement>(_ statement: Statement, logger: Logger) async throws -> PostgresRow? {
        try await rows(statement, logger: logger).first
    }
}
