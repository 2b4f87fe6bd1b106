#if canImport(Glibc)
    import Glibc
#endif

/// A test-only stand-in for `Synchronization.Mutex` in ThreadSanitizer builds
/// (`make test-sanitize`, `-D ANONREG_TSAN`; docs/ROBUSTNESS.md §Sanitizers).
///
/// On Linux, Swift's `Mutex` locks with a raw futex that ThreadSanitizer does not see, so every
/// access it guards is reported as a data race: every TSan report at the time of issue 23 came
/// from that. This type has the same `init` and `withLock` and locks a `pthread_mutex_t`, which
/// TSan intercepts. Each module that uses `Mutex` declares, in TSan builds only,
/// `typealias Mutex = TSanMutex` (a module's own declaration shadows the imported one); normal
/// builds never use this type.
public final class TSanMutex<Value>: @unchecked Sendable {
    private var value: Value
    private let lock: UnsafeMutablePointer<pthread_mutex_t>

    public init(_ initialValue: sending Value) {
        value = initialValue
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(lock, nil) == 0, "pthread_mutex_init failed")
    }

    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public func withLock<Result, E: Error>(_ body: (inout sending Value) throws(E) -> sending Result) throws(E) -> sending Result {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return try body(&value)
    }
}
