import Dispatch
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import Synchronization

/// One row of a due list as a backend read it: the subject row, the case link row and the
/// link's sealed handle (docs/STORAGE.md §Due list). Untrusted until `DueList.open` passed.
package struct DueRow<Subject: SealedSubjectRow & Sendable, Link: SealedCaseLinkRow & Sendable>: Sendable {
    package var subject: Subject
    package var link: Link
    package var sealedHandle: [UInt8]

    package init(subject: Subject, link: Link, sealedHandle: [UInt8]) {
        self.subject = subject
        self.link = link
        self.sealedHandle = sealedHandle
    }
}

/// Opens a due list's rows, the same way for every backend (docs/STORAGE.md §Due list).
///
/// Each row costs two MACs (the link row's and the subject row's), a data-key unwrap, the
/// sealed handle's open and the handle index that checks it: about 10 µs of CPU, all of it
/// independent of the other rows. A list of a thousand cases therefore runs on every core, in
/// contiguous slices of the sorted list. A failure anywhere fails the whole list, with the
/// error of the first failing row in the answer's order, exactly as one loop would.
package enum DueList {
    /// Below twice this many rows, one thread opens them all: a slice must outweigh the cost of
    /// waking a worker (tens of microseconds).
    package static let rowsPerSlice = 64

    package static func open<Subject, Link>(
        _ rows: [DueRow<Subject, Link>], keyring: Keyring, erased: ErasedSubjects?, slab: SecureSlab,
        cores: Int = activeCores
    ) throws(StorageError) -> [DueCase] {
        // The answer's order: next due day, then link id. Sorted here rather than by the
        // database (an ORDER BY made SQLite sort every row's cells in a temporary B-tree, about a
        // millisecond per thousand rows). The key is read before the rows are authenticated;
        // a row whose key was changed fails its MAC below, so it only ever reorders a list
        // that is then refused.
        // The keys copied out once: a comparison that read `rows[a]` would copy a row (eight
        // arrays retained and released) twice per comparison.
        let keys = rows.map { (day: $0.subject.columns.nextDue, link: $0.link.id) }
        let order = keys.indices.sorted { a, b in
            switch (keys[a].day, keys[b].day) {
            case (let dayA?, let dayB?) where dayA != dayB: dayA < dayB
            // A row without a due day is not due (and fails below): last.
            case (nil, _?): false
            case (_?, nil): true
            default: keys[a].link < keys[b].link
            }
        }
        let slices = max(1, min(cores, rows.count / rowsPerSlice))
        if slices == 1 {
            var due: [DueCase] = []
            due.reserveCapacity(rows.count)
            for index in order { due.append(try openRow(rows[index], keyring: keyring, erased: erased, slab: slab)) }
            return due
        }
        var outcomes = [Result<DueCase, StorageError>?](repeating: nil, count: rows.count)
        // The lowest position that failed so far. A slice stops at its own first failure, and
        // before any position past a failure another slice found: the list is refused then,
        // and no more keys are unwrapped for it.
        let firstFailure = Atomic<Int>(Int.max)
        outcomes.withUnsafeMutableBufferPointer { buffer in
            let outcomes = Slots(buffer)
            DispatchQueue.concurrentPerform(iterations: slices) { slice in
                let start = rows.count * slice / slices
                let end = rows.count * (slice + 1) / slices
                for index in start..<end {
                    if firstFailure.load(ordering: .relaxed) < index { return }
                    do throws(StorageError) {
                        outcomes[index] = .success(try openRow(rows[order[index]], keyring: keyring, erased: erased, slab: slab))
                    } catch {
                        outcomes[index] = .failure(error)
                        firstFailure.min(index, ordering: .relaxed)
                        return
                    }
                }
            }
        }
        var due: [DueCase] = []
        due.reserveCapacity(rows.count)
        for outcome in outcomes {
            switch outcome {
            case .success(let row): due.append(row)
            case .failure(let error): throw error
            // A position is left unopened only past a failure at a lower position, which
            // this loop meets first. Should that ever not hold, the list is still refused.
            case nil: throw .integrity(what: "due list (a row was not opened)")
            }
        }
        return due
    }

    /// One row: the link's MAC against the subject's sid, the subject's MAC and the erasure
    /// ledger, then the handle opened under the subject's data key (docs/CRYPTO.md §Records).
    static func openRow<Subject, Link>(
        _ row: DueRow<Subject, Link>, keyring: Keyring, erased: ErasedSubjects?, slab: SecureSlab
    ) throws(StorageError) -> DueCase {
        try row.link.authenticate(sid: row.subject.sid, keyring: keyring)
        try row.subject.authenticate(keyring: keyring, erased: erased)
        let dek = try row.subject.dek(keyring: keyring, slab: slab)
        let handle = try CaseHandleSeal.open(
            row.sealedHandle, sid: row.subject.sid, linkID: row.link.id, handleIndex: row.link.handleIndex, dek: dek, keyring: keyring)
        guard let next = row.subject.columns.nextDue else { throw .tampered(what: "case handle") }
        return DueCase(caseHandle: handle, nextDue: next, status: row.subject.columns.status)
    }

    /// The outcomes' storage, lent to the slices. Each slice writes only its own indices, and
    /// concurrentPerform returns after every slice has finished, so no two threads touch one
    /// slot and none outlives the buffer.
    private struct Slots: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<Result<DueCase, StorageError>?>
        init(_ buffer: UnsafeMutableBufferPointer<Result<DueCase, StorageError>?>) { self.buffer = buffer }
        subscript(index: Int) -> Result<DueCase, StorageError>? {
            get { buffer[index] }
            nonmutating set { buffer[index] = newValue }
        }
    }

    /// The cores this process may run on.
    package static var activeCores: Int { ProcessInfo.processInfo.activeProcessorCount }
}
