internal import CAnonregLinux

#if canImport(Glibc)
    import Glibc
#endif

/// What every `anonreg` and `anonreg-clinic` process does first, as anonregd does
/// (Daemon.hardenProcess): it may hold key material (a keyring, a passphrase, the OPRF seed), a
/// patient code, or the identity details a linkage value is computed from, so it never writes a
/// core dump and no other process of the same user may ptrace it or read its memory
/// (PR_SET_DUMPABLE 0; docs/CRYPTO.md §Secret memory).
public enum ProcessHardening {
    public static func apply() {
        _ = anonreg_set_dumpable(0)
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &none)
    }
}
