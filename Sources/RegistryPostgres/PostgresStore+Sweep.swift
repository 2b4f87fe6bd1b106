import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats
import RegistryKeyring
import RegistryProtocol

/// The sweeper's and the backfill's work on PostgreSQL: the same intents and checks as
/// `SQLiteRegistryStore+Sweep.swift` and `+Summary.swift`, with each write locking the subject
/// row it decides on. On several nodes only one sweeps at a time (docs/STORAGE.md §PostgreSQL,
/// "Single-runner jobs"); the locks keep a sweep right even beside requests on every node.
extension PostgresStore {
    public func subjectsToReview(onOrBefore day: Day, limit: Int) async throws(StorageError) -> [SubjectReference] {
        let logger = self.logger
        return try await read { connection in
            try await Self.references(
                connection,
                """
                SELECT id FROM subject WHERE review_on IS NOT NULL AND review_on <= \(day.description)
                ORDER BY review_on, id LIMIT \(Int64(max(0, limit)))
                """, logger: logger)
        }
    }

    /// A subject that fails its integrity check is erased now (`erasedIntegrity`, audited as
    /// `erase-integrity`), after a second look under its row lock. A missing KEK is thrown.
    public func openForReview(_ subject: SubjectReference) async throws(StorageError) -> ReviewOpening {
        let recorder = AuditRecorder.current
        let logger = self.logger
        let opened: OpenedSubject?
        do {
            opened = try await read { connection in
                try await self.openWhole(connection, subject, recorder: recorder, logger: logger)
            }
        } catch let error where error.isIntegrityFailure {
            return try await eraseFailingReview(subject)
        }
        return opened.map(ReviewOpening.opened) ?? .gone
    }

    /// The second look at a subject whose review open failed: erased if it still fails, under
    /// its row lock; opened if it now passes (a commit in between was the whole story).
    private func eraseFailingReview(_ subject: SubjectReference) async throws(StorageError) -> ReviewOpening {
        let recorder = AuditRecorder.current
        let logger = self.logger
        return try await write { connection in
            guard try await self.lockSubject(connection, subject, logger: logger) else { return .gone }
            do {
                guard let opened = try await self.openWhole(connection, subject, recorder: recorder, logger: logger) else { return .gone }
                return .opened(opened)
            } catch let error as StorageError where error.isIntegrityFailure {
                try await self.eraseForIntegrity(connection, subject, recorder: recorder, logger: logger)
                return .erasedIntegrity
            }
        }
    }

    /// The row is locked and authenticated again before anything is applied: the stamp holds the
    /// row MAC the open saw, and only a row whose MAC verifies now can be that row unchanged. A
    /// row that fails is erased as `erase-integrity`, never kept with a fresh MAC.
    public func commitReview(_ subject: SubjectReference, _ decision: SweepDecision, ifUnchanged stamp: SubjectStamp)
        async throws(StorageError) -> SweepResult
    {
        let recorder = AuditRecorder.current
        let every = auditCheckpointEvery
        let logger = self.logger
        let ledgered = ReferenceBox()
        let result = try await write { connection -> SweepResult in
            guard let read = try await self.subjectRow(connection, subject, forUpdate: true, logger: logger) else { return .gone }
            let keyring = self.keyring
            var row: PostgresSubjectRow
            do {
                row = try read()
                try row.authenticate(keyring: keyring, erased: self.erased)
            } catch let error as StorageError where error.isIntegrityFailure {
                try await self.eraseForIntegrity(connection, subject, recorder: recorder, logger: logger)
                return .erasedIntegrity
            }
            guard try await row.stamp(connection, logger: logger) == stamp else { throw StorageError.subjectChanged }
            switch decision {
            case .keep(let columns):
                if columns != row.columns {
                    row.columns = columns
                    try await row.save(connection, keyring: keyring, logger: logger)
                }
                return .kept
            case .erase(let counters):
                ledgered.value = try await self.erase(
                    connection, subject: row, counters: counters, recorder: recorder, checkpointEvery: every, logger: logger)
                return .erased
            }
        }
        // Refused as erased only once committed (PostgresStore+Erasure.swift, `erase`).
        if result == .erased, let reference = ledgered.value { erased.insert(contentsOf: [reference]) }
        return result
    }

    // MARK: - Backfill (docs/STORAGE.md §Summary)

    public func subjectsWithoutSummary(after: SubjectReference?, limit: Int) async throws(StorageError) -> [SubjectReference] {
        let logger = self.logger
        return try await read { connection in
            try await Self.references(
                connection,
                "SELECT id FROM subject WHERE summary IS NULL AND id > \(after?.rawValue ?? .min) ORDER BY id LIMIT \(Int64(max(0, limit)))",
                logger: logger)
        }
    }

    public func openForSummary(_ subject: SubjectReference) async throws(StorageError) -> OpenedSubject? {
        let logger = self.logger
        return try await read { connection in try await self.openWhole(connection, subject, recorder: nil, logger: logger) }
    }

    /// Only the summary column changes, on rows still without one and still as their stamp says,
    /// each under its row lock; a row that fails since it was opened is left to the integrity
    /// check and the rest are stored.
    public func storeSummaries(_ updates: [SummaryUpdate]) async throws(StorageError) -> Int {
        guard !updates.isEmpty else { return 0 }
        let logger = self.logger
        return try await write(bulk: true) { connection in
            var stored = 0
            for update in updates {
                guard let read = try await self.subjectRow(connection, update.subject, forUpdate: true, logger: logger),
                    var row = try? read(), row.summary == nil
                else { continue }
                guard try await row.stamp(connection, logger: logger) == update.stamp else { continue }
                let keyring = self.keyring
                do {
                    try row.authenticate(keyring: keyring, erased: self.erased)
                    let dek = try row.dek(keyring: keyring, slab: self.dekSlab)
                    try await row.sealSummary(connection, update.summary, dek: dek, logger: logger)
                } catch {
                    continue
                }
                try await connection.send("UPDATE subject SET summary = \(row.summary?.bytea) WHERE id = \(row.id)", logger: logger)
                stored += 1
            }
            return stored
        }
    }

    // MARK: - Helpers

    /// The subject row with id `subject`, read (optionally locked) but not yet decoded: the
    /// returned closure decodes it, so that a row that does not decode is told from one that is
    /// gone. Nil if there is no such row.
    func subjectRow(_ connection: PostgresConnection, _ subject: SubjectReference, forUpdate: Bool, logger: Logger) async throws
        -> (() throws -> PostgresSubjectRow)?
    {
        let lock = forUpdate ? " FOR UPDATE" : ""
        guard
            let row = try await connection.row(
                "SELECT \(unescaped: PostgresSubjectRow.selectColumns) FROM subject s WHERE s.id = \(subject.rawValue)\(unescaped: lock)",
                logger: logger)
        else { return nil }
        let cells = row.makeRandomAccess()
        return { try PostgresSubjectRow(cells) }
    }

    /// Locks the subject row; false if it is gone.
    func lockSubject(_ connection: PostgresConnection, _ subject: SubjectReference, logger: Logger) async throws -> Bool {
        try await connection.row("SELECT 1 FROM subject WHERE id = \(subject.rawValue) FOR UPDATE", logger: logger) != nil
    }

    /// The subject's whole history opened, its row authenticated, with its stamp; nil if gone.
    func openWhole(_ connection: PostgresConnection, _ subject: SubjectReference, recorder: AuditRecorder?, logger: Logger) async throws
        -> OpenedSubject?
    {
        guard let read = try await subjectRow(connection, subject, forUpdate: false, logger: logger) else { return nil }
        let row = try read()
        let keyring = self.keyring
        try row.authenticate(keyring: keyring, erased: erased)
        let view = try await row.view(connection, keyring: keyring, slab: dekSlab, recorder: recorder, logger: logger)
        return OpenedSubject(view: view, stamp: try await row.stamp(connection, logger: logger))
    }

    /// Erases a subject that failed its integrity check, audited as `erase-integrity`, in the
    /// caller's write; unless this node's key of the subject's KEK version is not the one the
    /// registry recorded (`trustsKEK`): then the failure is this node's key, not the subject,
    /// which is left as it is (`keyringBehind`, counted as failed by the sweep).
    private func eraseForIntegrity(_ connection: PostgresConnection, _ subject: SubjectReference, recorder: AuditRecorder?, logger: Logger)
        async throws
    {
        if let version = try await connection.row("SELECT kek_version FROM subject WHERE id = \(subject.rawValue)", logger: logger)?
            .decode(Int32.self), !(try await trustsKEK(connection, version: Int(version), logger: logger))
        {
            throw distrusted(Int(version), logger: logger)
        }
        recorder?.describe(AuditRecorder.Action(actor: Sweeper.auditActor, action: "erase-integrity"))
        _ = try await eraseFailingRow(connection, id: subject.rawValue, recorder: recorder, logger: logger)
    }

    static func references(_ connection: PostgresConnection, _ query: PostgresQuery, logger: Logger) async throws -> [SubjectReference] {
        var references: [SubjectReference] = []
        for row in try await connection.rows(query, logger: logger) {
            references.append(SubjectReference(rawValue: try row.decode(Int64.self)))
        }
        return references
    }
}

/// Carries an erasure's ledger reference out of its transaction's closure.
final class ReferenceBox: @unchecked Sendable {
    var value: [UInt8]?
}
