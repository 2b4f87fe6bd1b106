// ThreadSanitizer builds (`make test-sanitize`) swap Synchronization.Mutex, which TSan cannot
// see on Linux, for a pthread-based stand-in with the same API (Sources/TSanLockShim).
#if ANONREG_TSAN
    import TSanLockShim
    typealias Mutex = TSanMutex
#endif
