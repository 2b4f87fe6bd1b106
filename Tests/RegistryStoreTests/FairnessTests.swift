import Foundation
import RegistryCore
import Testing

@testable import RegistryStore

/// docs/ROBUSTNESS.md §Resource limits: one clinic's backlog must not make another clinic's
/// single request wait behind it, in the group-commit writer or on the read path. The tests
/// check the order work is served in, never times.
struct FairnessTests {
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [String] = []
        func add(_ entry: String) {
            lock.lock()
            entries.append(entry)
            lock.unlock()
        }
        var all: [String] {
            lock.lock()
            defer { lock.unlock() }
            return entries
        }
    }

    /// Polls without blocking a cooperative thread (at most 20 s; the test then fails on the order).
    static func waitUntil(_ condition: () -> Bool) async throws {
        for _ in 0..<20_000 where !condition() { try await Task.sleep(for: .milliseconds(1)) }
    }

    @Test func aLaneWithOneWriteIsInTheNextBatchWhateverAnotherQueued() async throws {
        let f = try StoreFixture()
        let writer = f.store.writer
        let log = Log()
        let release = Log()
        let started = Log()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // A first write holds the writer while north queues 300 writes and south one.
            group.addTask {
                try await RequestLane.$current.withValue("clinic north") {
                    try await writer.write { _ in
                        started.add("hold")
                        for _ in 0..<20_000 where release.all.isEmpty { usleep(1000) }
                        log.add("hold")
                    }
                }
            }
            try await Self.waitUntil { !started.all.isEmpty }
            for i in 0..<300 {
                group.addTask {
                    try await RequestLane.$current.withValue("clinic north") { try await writer.write { _ in log.add("north-\(i)") } }
                }
            }
            try await Self.waitUntil { writer.waiting.writes == 300 }
            group.addTask { try await RequestLane.$current.withValue("clinic south") { try await writer.write { _ in log.add("south") } } }
            try await Self.waitUntil { writer.waiting.writes == 301 }
            release.add("go")
            try await group.waitForAll()
        }
        let order = log.all
        let south = try #require(order.firstIndex(of: "south"))
        #expect(order.count == 302)
        // "hold", then the next batch: at most maxBatch writes, south among them.
        #expect(south <= GroupCommitWriter.maxBatch, "south's write was number \(south) of \(order.count)")
    }

    @Test func aLaneWithOneReadGetsTheNextFreeReader() async throws {
        let gate = FairReadGate(permits: 1)
        let log = Log()
        let release = Log()
        let started = Log()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await RequestLane.$current.withValue("clinic north") {
                    await gate.run {
                        started.add("hold")
                        try? await Self.waitUntil { !release.all.isEmpty }
                        log.add("hold")
                    }
                }
            }
            try await Self.waitUntil { !started.all.isEmpty }
            for i in 0..<100 {
                group.addTask { await RequestLane.$current.withValue("clinic north") { await gate.run { log.add("north-\(i)") } } }
            }
            try await Self.waitUntil { gate.waiting == 100 }
            group.addTask { await RequestLane.$current.withValue("clinic south") { await gate.run { log.add("south") } } }
            try await Self.waitUntil { gate.waiting == 101 }
            release.add("go")
            try await group.waitForAll()
        }
        let order = log.all
        #expect(order.count == 102)
        #expect(order.firstIndex(of: "south") ?? .max <= 2, "south read at \(order.firstIndex(of: "south") ?? -1): \(order.prefix(4))")
    }

    @Test func fairQueueServesLanesInTurn() {
        var queue = FairQueue<String>()
        for i in 0..<5 { queue.append("a\(i)", lane: "a") }
        queue.append("b0", lane: "b")
        queue.append("c0", lane: "c")
        queue.append("b1", lane: "b")
        #expect(queue.take(4) == ["a0", "b0", "c0", "a1"])
        queue.append("d0", lane: "d")
        #expect(queue.take(10) == ["b1", "a2", "d0", "a3", "a4"])
        #expect(queue.isEmpty)
    }
}
