import Synchronization

/// The erasure ledger's references, held in memory so that every subject the store opens is
/// checked against them: a subject row put back after its erasure (from an old copy of the
/// database) is refused and erased again, never served (invariant 8; docs/CRYPTO.md §Erasure
/// ledger). Only the first 16 bytes of each 32-byte reference are kept: at a million erasures a
/// chance collision has probability below 2⁻⁸⁸ and would only refuse one subject.
package final class ErasedSubjects: Sendable {
    private struct Prefix: Hashable, Sendable {
        var high: UInt64
        var low: UInt64
        init(_ reference: [UInt8]) {
            high = reference.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
            low = reference.dropFirst(8).prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
        }
    }

    private let references = Mutex(Set<Prefix>())

    package init() {}

    package func insert<S: Sequence>(contentsOf references: S) where S.Element == [UInt8] {
        self.references.withLock { set in for reference in references { set.insert(Prefix(reference)) } }
    }

    package func contains(_ reference: [UInt8]) -> Bool {
        references.withLock { $0.contains(Prefix(reference)) }
    }

    package var count: Int { references.withLock { $0.count } }
}
