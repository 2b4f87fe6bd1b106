#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What may sit in the keys directory (docs/CRYPTO.md §Keyring): anonreg's own regular files,
/// nothing else. A stray file is refused by name rather than ignored: CRYPTO.md promises that
/// every file there is anonreg's and 0600, a FIFO would hang whoever opens it, and a copy of a
/// key left beside the others is a copy nobody rotates or destroys.
public enum KeyringDirectory {
    /// The fixed names, besides `kek-N.key`.
    static let knownNames: Set<String> = [
        KeyFileName.manifest, KeyFileName.oprfSeed, KeyFileName.index, KeyFileName.auditSigning,
        ErasureLedger.fileName,
        // The newest signed audit checkpoint (docs/CRYPTO.md §Audit, "Anchor").
        AuditAnchor.fileName,
        // The migrations the database has reached (docs/CRYPTO.md §Authenticated columns).
        SchemaMark.fileName,
    ]

    /// Whether `name` is one of anonreg's files: a fixed name, or `kek-N.key` (a version the
    /// manifest names, or one left by a rotation that crashed before its manifest write).
    static func isKnown(_ name: String) -> Bool {
        if knownNames.contains(name) { return true }
        guard name.hasPrefix("kek-"), name.hasSuffix(".key") else { return false }
        let digits = name.dropFirst(4).dropLast(4)
        return !digits.isEmpty && digits.count <= 9 && digits.allSatisfy { $0.isASCII && $0.isNumber } && digits.first != "0"
    }

    /// A temporary file of `SecureFile.writeAtomically` (`.NAME.tmp-HEX`) for a known NAME: what
    /// an interrupted write leaves. Never read; tolerated as a regular file.
    static func isTemporary(_ name: String) -> Bool {
        guard name.hasPrefix("."), let marker = name.range(of: ".tmp-") else { return false }
        let target = String(name[name.index(after: name.startIndex)..<marker.lowerBound])
        let suffix = name[marker.upperBound...]
        return isKnown(target) && !suffix.isEmpty && suffix.allSatisfy(\.isHexDigit)
    }

    /// Every entry of `directory` that is not one of anonreg's regular files, with what it is;
    /// empty when the directory holds only anonreg's files.
    public static func strangers(in directory: String) throws(KeyringError) -> [String] {
        guard let dir = opendir(directory) else { throw .io(path: directory, operation: "opendir", errno: errno) }
        defer { closedir(dir) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            var st = stat()
            guard lstat(directory + "/" + name, &st) == 0 else { continue }  // gone meanwhile
            let kind: String? =
                switch st.st_mode & S_IFMT {
                case S_IFREG: nil
                case S_IFIFO: "a FIFO"
                case S_IFLNK: "a symbolic link"
                case S_IFDIR: "a directory"
                case S_IFSOCK: "a socket"
                default: "a device or other special file"
                }
            if let kind {
                found.append("\(name) (\(kind))")
            } else if !isKnown(name) && !isTemporary(name) {
                found.append("\(name) (not an anonreg file, mode \(String(st.st_mode & 0o7777, radix: 8)))")
            }
        }
        return found.sorted()
    }

    /// Refuses a keys directory that holds anything but anonreg's regular files, naming each.
    public static func check(_ directory: String) throws(KeyringError) {
        let found = try strangers(in: directory)
        guard found.isEmpty else { throw .unexpectedFiles(directory: directory, entries: found) }
    }
}
