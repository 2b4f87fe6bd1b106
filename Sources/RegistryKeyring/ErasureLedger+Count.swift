#if canImport(Glibc)
    import Glibc
#endif

extension ErasureLedger {
    /// How many entries the ledger in `directory` holds, from its size (a header, then entries
    /// of `entryBytes` each), without reading or checking it: for the
    /// `anonreg_erasure_ledger_entries` gauge. Nil when there is no ledger file.
    public static func entryCount(directory: String) -> Int? {
        var st = stat()
        guard stat(directory + "/" + fileName, &st) == 0 else { return nil }
        return max(0, Int(st.st_size) - header.utf8.count) / entryBytes
    }
}
