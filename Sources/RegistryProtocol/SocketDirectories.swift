#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who may have put the socket where it is (docs/OPERATIONS.md §Socket). Both ends apply it: the
/// daemon before it listens, and the CLI before it sends anything (a patient code, for one).
///
/// Whoever can write a directory on the way to the socket can rename the socket and bind their
/// own in its place, then read every request clinics send. So the socket's directory and each
/// ancestor up to `/` must be owned by a trusted uid (root, the daemon's user) and writable by
/// nobody else: no group or other write bit, unless the directory is sticky (as /tmp is; there
/// only an entry's owner may rename or remove it). The chain is checked as written (each
/// component with `lstat`, so a symbolic link's owner counts) and as resolved (`realpath`).
public enum SocketDirectories {
    public struct Problem: Error, Equatable, Sendable {
        /// The directory (or link) that fails the rule.
        public var path: String
        /// What is wrong with it, e.g. "has mode 770 and is writable by its group (gid 2500)".
        public var problem: String
        /// What fixes it.
        public var fix: String
    }

    /// The first directory on the way to `socketPath` that breaks the rule, or nil when the whole
    /// chain is safe. `trusted` holds the uids that may own a directory on the way.
    public static func firstProblem(socketPath: String, trusted: Set<UInt32>) -> Problem? {
        var directory = parent(of: socketPath)
        if !directory.hasPrefix("/") {
            guard let cwd = getcwd(nil, 0) else {
                return Problem(
                    path: directory, problem: "cannot be resolved (\(describe(errno)))", fix: "give the socket as an absolute path")
            }
            directory = String(cString: cwd) + "/" + directory
            free(cwd)
        }
        var chains = [ancestors(of: directory)]
        guard let resolved = realpath(directory, nil) else {
            return Problem(
                path: directory, problem: "cannot be resolved (\(describe(errno)))", fix: "create it, or choose another socket path")
        }
        let real = ancestors(of: String(cString: resolved))
        free(resolved)
        if real != chains[0] { chains.append(real) }
        for chain in chains {
            for path in chain {
                if let problem = check(path, trusted: trusted) { return problem }
            }
        }
        return nil
    }

    /// The directory part of a path (`.` for a bare name).
    public static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let head = String(path[..<slash])
        return head.isEmpty ? "/" : head
    }

    /// `/a/b/c` → `["/a/b/c", "/a/b", "/a", "/"]`, lexically (`.` and `..` are dealt with by the
    /// resolved chain, which `realpath` gives without them).
    static func ancestors(of path: String) -> [String] {
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var out: [String] = []
        while !parts.isEmpty {
            out.append("/" + parts.joined(separator: "/"))
            parts.removeLast()
        }
        out.append("/")
        return out
    }

    static func check(_ path: String, trusted: Set<UInt32>) -> Problem? {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            return Problem(path: path, problem: "cannot be examined (\(describe(errno)))", fix: "check that it exists and can be reached")
        }
        let owner = UInt32(st.st_uid)
        guard trusted.contains(owner) else {
            let who = trusted.sorted().map(String.init).joined(separator: ", ")
            return Problem(
                path: path, problem: "is owned by uid \(owner), which is not root or the daemon's user (trusted uids: \(who))",
                fix:
                    "make it root's or the daemon user's (chown root \(path)), or put the socket in a directory that is (the shipped units use /run/anonreg, 0750 anonreg:anonreg-clinic)"
            )
        }
        // A symbolic link's own mode means nothing; its owner was checked, its target is checked
        // in the resolved chain.
        if (st.st_mode & S_IFMT) == S_IFLNK { return nil }
        let sticky = st.st_mode & mode_t(S_ISVTX) != 0
        if st.st_mode & 0o022 != 0 && !sticky {
            let who = st.st_mode & 0o002 != 0 ? "others" : "its group (gid \(st.st_gid))"
            return Problem(
                path: path, problem: "has mode \(String(st.st_mode & 0o7777, radix: 8)) and is writable by \(who)",
                fix: "chmod go-w \(path) (the clinic group needs only x on the socket's directory), or put the socket elsewhere")
        }
        return nil
    }

    static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }
}
