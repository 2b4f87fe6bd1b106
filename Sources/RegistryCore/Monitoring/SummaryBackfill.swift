import RegistryProtocol

/// The online migration that gives every subject its sealed monitoring summary
/// (docs/STORAGE.md §Summary, docs/OPERATIONS.md §Upgrading): subjects written before the
/// summary existed, or whose summary was cleared, are opened one by one, folded, and their
/// summaries stored in batches, each one transaction, while the daemon serves. A summary is
/// stored only if the subject is unchanged since it was opened, so a check-up that commits in
/// between (and writes its own summary) always wins. Progress is the set of subjects still
/// without one: killed at any moment, the next run resumes where the last committed batch
/// ended. Until a subject is reached it is read from its history, as before.
public struct SummaryBackfill: Sendable {
    public let storage: any RegistryStorage

    public init(storage: any RegistryStorage) { self.storage = storage }

    public struct Report: Sendable, Equatable {
        /// Summaries stored.
        public var built = 0
        /// Subjects that could not be opened (an integrity failure, a missing KEK): left for the
        /// sweeper's integrity check and the next run.
        public var failed = 0
        /// Subjects that changed between their open and the batch's commit: left for the next
        /// run, unless their change wrote a summary.
        public var raced = 0
        public init() {}
    }

    /// Builds summaries until none is missing (or only those that failed are), `batch` per
    /// transaction, or until the task is cancelled (between batches: what was stored stays).
    /// `progress` is called after each batch.
    public func run(batch: Int = 200, progress: @Sendable (Report) -> Void = { _ in }) async throws(DomainError) -> Report {
        var report = Report()
        var after: SubjectReference? = nil
        while !Task.isCancelled {
            let work: [SubjectReference]
            do { work = try await storage.subjectsWithoutSummary(after: after, limit: max(1, batch)) } catch { throw .storage(error) }
            guard let last = work.last else { return report }
            after = last
            var updates: [SummaryUpdate] = []
            for subject in work where !Task.isCancelled {
                do {
                    guard let opened = try await storage.openForSummary(subject) else { continue }
                    let summary = MonitoringSummary(records: try SubjectRecords(opened.view))
                    updates.append(SummaryUpdate(subject: subject, summary: try summary.encoded(), stamp: opened.stamp))
                } catch let error as StorageError where error == .storageFull {
                    throw .storage(error)
                } catch {
                    report.failed += 1
                }
            }
            let stored: Int
            do { stored = try await storage.storeSummaries(updates) } catch { throw .storage(error) }
            report.built += stored
            report.raced += updates.count - stored
            progress(report)
        }
        return report
    }
}
