import Foundation

/// A tiny lock wrapper so pure-logic files need not import Foundation.
final class NSLockShim: @unchecked Sendable {
    private let lock = NSLock()
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
