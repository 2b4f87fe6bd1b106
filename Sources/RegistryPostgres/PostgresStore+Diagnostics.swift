import Logging
internal import NIOCore
internal import PostgresNIO
import RegistryCore
import RegistryFormats

extension PostgresStore {
    /// The byte strings by which the subject behind `handle` can be recognised in the
    /// database's files: its sid, wrapped key, code index, MACs, chain head, sealed records and
    /// its case links' indexes, sealed handles and MACs (the conformance suite's scans).
    public func storedTraces(case handle: CaseHandle, clinic: ClinicID) async throws(StorageError) -> [[UInt8]] {
        let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
        let logger = self.logger
        return try await read { connection in
            guard let subject = try await self.subject(connection, handleIndex: handleIndex, clinic: clinic) else {
                throw StorageError.caseNotFound
            }
            var traces: [[UInt8]] = [subject.sid, subject.wrappedDEK, subject.codeIndex, subject.rowMAC]
            if subject.records > 0 { traces.append(subject.recordsHead) }
            for row in try await connection.rows("SELECT sealed FROM record WHERE subject_id = \(subject.id)", logger: logger) {
                traces.append(try row.makeRandomAccess()[0].bytes())
            }
            for row in try await connection.rows(
                "SELECT handle_index, sealed_handle, row_mac FROM case_link WHERE subject_id = \(subject.id)", logger: logger)
            {
                let cells = row.makeRandomAccess()
                traces += [try cells[0].bytes(), try cells[1].bytes(), try cells[2].bytes()]
            }
            return traces
        }
    }
}

extension PostgresStore {
    /// The batches this node committed and the writes they held (PostgresGroupCommit.swift):
    /// benchmarks and tests compare the two.
    public var writeBatches: (commits: Int, writes: Int) { groupCommit.counts }

    /// Entries of this node's write queue not yet taken into a batch (tests), including writes
    /// already answered by their queue wait or a cancellation and not yet dropped.
    package var queuedWrites: Int { groupCommit.queued }
}
