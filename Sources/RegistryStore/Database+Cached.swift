internal import GRDB

/// Statements that every request runs (the audit append, a subject's rows, a check-up's
/// insert) go through the connection's prepared-statement cache, so SQLite parses each of them
/// once per connection instead of once per request (docs/PERFORMANCE.md, finding 5).
/// GRDB re-prepares a cached statement by itself when the schema changes.
extension Database {
    /// `execute(sql:arguments:)` through the statement cache.
    func executeCached(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// One row, through the statement cache.
    func fetchOneCached(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws -> Row? {
        try Row.fetchOne(cachedStatement(sql: sql), arguments: arguments)
    }

    /// Every row, through the statement cache.
    func fetchAllCached(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws -> [Row] {
        try Row.fetchAll(cachedStatement(sql: sql), arguments: arguments)
    }
}
