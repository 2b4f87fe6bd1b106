import Synchronization

/// How many callers may do a piece of blocking work on their own thread at once
/// (`SQLiteRegistryStore.readPoint`): `enter` takes a place if one is free, `leave` gives it
/// back. A caller that finds none does the work the non-blocking way instead; nobody waits here.
/// A limit of 0 gives no place at all.
final class InlineAllowance: Sendable {
    let limit: Int
    private let running = Atomic<Int>(0)
    private let refusals = Atomic<Int>(0)

    init(limit: Int) { self.limit = max(0, limit) }

    func enter() -> Bool {
        var current = running.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = running.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        refusals.add(1, ordering: .relaxed)
        return false
    }

    func leave() { running.subtract(1, ordering: .acquiringAndReleasing) }

    /// Places taken now (tests).
    var taken: Int { running.load(ordering: .relaxed) }

    /// How many times `enter` found no place (tests).
    var refused: Int { refusals.load(ordering: .relaxed) }
}
