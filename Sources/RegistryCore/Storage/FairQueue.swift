/// FIFO queues per lane, served in turn (round robin): `take(n)` takes the oldest item of each
/// lane with work, lane after lane, until it has `n` items or nothing is left, and the next
/// `take` goes on with the lane after the last one served. One lane's backlog never makes
/// another lane's first item wait for more than one turn (docs/ROBUSTNESS.md §Resource limits).
/// Not thread-safe: its owner holds it under a lock. Both backends' group commits and SQLite's
/// read gate queue with it.
public struct FairQueue<Item> {
    private var queues: [String: [Item]] = [:]
    /// Heads of `queues` (items before it were taken; compacted now and then).
    private var heads: [String: Int] = [:]
    /// Lanes with work, in turn order.
    private var ring: [String] = []
    private var cursor = 0
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    public mutating func append(_ item: Item, lane: String) {
        if queues[lane] == nil {
            queues[lane] = []
            heads[lane] = 0
            // A lane that comes (back) with work joins just before the cursor: it is served
            // after every lane already waiting has had one turn, not before.
            ring.insert(lane, at: cursor)
            cursor += 1
        }
        queues[lane]!.append(item)
        count += 1
    }

    /// Up to `limit` items, one per lane in turn.
    public mutating func take(_ limit: Int) -> [Item] {
        var out: [Item] = []
        out.reserveCapacity(min(limit, count))
        while out.count < limit, !ring.isEmpty {
            if cursor >= ring.count { cursor = 0 }
            let lane = ring[cursor]
            var head = heads[lane]!
            out.append(queues[lane]![head])
            head += 1
            count -= 1
            if head == queues[lane]!.count {
                queues[lane] = nil
                heads[lane] = nil
                ring.remove(at: cursor)
            } else {
                if head >= 64, head * 2 >= queues[lane]!.count {
                    queues[lane]!.removeFirst(head)
                    head = 0
                }
                heads[lane] = head
                cursor += 1
            }
        }
        return out
    }

    /// Items waiting in `lane` (tests).
    public func waiting(in lane: String) -> Int { queues[lane].map { $0.count - heads[lane]! } ?? 0 }
}
