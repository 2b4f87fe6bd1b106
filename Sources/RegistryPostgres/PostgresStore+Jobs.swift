import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore

/// Single-runner jobs on PostgreSQL (docs/STORAGE.md §Single-runner jobs): the sweeper and the
/// audit checkpoint run on one node at a time, and the sweep once per interval for the whole
/// registry.
///
/// A job runs under a session-level advisory lock (`pg_try_advisory_lock`) held on one pooled
/// connection for the job's whole length; the job's own work uses the pool's other connections.
/// A node that is SIGKILLed, or loses the database, ends that session, and the server frees the
/// lock at once: the next node that asks (the daemon asks every minute) takes the job over. The
/// job's end is recorded in `job_run`, so the nodes together run it once per interval. The lock
/// is for order, not for correctness: every write the jobs make locks the rows it decides on.
/// A `finished_at` in the future (a database administrator's, or a clock gone wrong) counts as
/// not done: nobody can postpone the sweep by writing a date.
extension PostgresStore {
    /// The lock key of a job: "ANRGJB" followed by the job's number, as a big-endian integer.
    static func jobLockKey(_ job: RegistryJob) -> Int64 {
        let number: Int64 =
            switch job {
            case .sweep: 1
            case .auditCheckpoint: 2
            }
        return 0x414E_5247_4A42_0000 | number
    }

    public func runIfDue<T: Sendable>(_ job: RegistryJob, every interval: Duration, _ body: @Sendable () async throws -> T)
        async throws -> T?
    {
        let logger = self.logger
        let key = Self.jobLockKey(job)
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        do {
            return try await client.withConnection { connection -> T? in
                let locked = try await connection.row("SELECT pg_try_advisory_lock(\(key))", logger: logger)?.decode(Bool.self) ?? false
                guard locked else { return nil }
                do {
                    let recent =
                        try await connection.row(
                            """
                            SELECT 1 FROM job_run WHERE job = \(job.rawValue)
                            AND finished_at > now() - make_interval(secs => \(seconds)) AND finished_at <= now()
                            """,
                            logger: logger) != nil
                    guard !recent || interval <= .zero else {
                        try await connection.send("SELECT pg_advisory_unlock(\(key))", logger: logger)
                        return nil
                    }
                    let result: Result<T, any Error>
                    do { result = .success(try await body()) } catch { result = .failure(error) }
                    // Recorded whether or not it succeeded: a failing job is tried again at its
                    // next interval, as the daemon did with one node. The lock's connection sat
                    // idle while the job ran: if it was lost meanwhile, so was the lock.
                    try connection.requireOpen()
                    try await connection.send(
                        """
                        INSERT INTO job_run (job, finished_at) VALUES (\(job.rawValue), now())
                        ON CONFLICT (job) DO UPDATE SET finished_at = excluded.finished_at
                        """, logger: logger)
                    try await connection.send("SELECT pg_advisory_unlock(\(key))", logger: logger)
                    return try result.get()
                } catch {
                    await connection.cleanUp("SELECT pg_advisory_unlock(\(key))", after: error, logger: logger)
                    throw error
                }
            }
        } catch let error as StorageError {
            throw error
        } catch let error as PSQLError {
            throw Self.storageError(error)
        }
    }

    public func lastFinished(_ job: RegistryJob) async throws -> Double? {
        let logger = self.logger
        return try await read { connection in
            try await connection.row(
                "SELECT extract(epoch FROM finished_at)::float8 FROM job_run WHERE job = \(job.rawValue)", logger: logger
            )?.decode(Double.self)
        }
    }
}
