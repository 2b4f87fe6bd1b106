#if canImport(Glibc)
    import Glibc
#endif

/// Named points where a test can freeze a process and kill it there (a restore between two
/// renames, a CLI holding key material). Debug builds only: in a release build `at(_:)` is
/// empty and `ANONREG_TEST_STOP_AT` means nothing.
public enum TestStop {
    /// With `ANONREG_TEST_STOP_AT=<name>` in the environment, the process stops itself
    /// (`SIGSTOP`) here; the test then inspects it, kills it, or lets it continue.
    @inline(__always)
    public static func at(_ name: String) {
        #if DEBUG
            if let wanted = getenv("ANONREG_TEST_STOP_AT"), String(cString: wanted) == name {
                raise(SIGSTOP)
            }
        #endif
    }
}
