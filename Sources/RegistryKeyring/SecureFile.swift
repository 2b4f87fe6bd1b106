import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// POSIX file operations for key material: permission checks as ssh does them, reads straight
/// into secure memory, and atomic writes (temp file, fsync, rename, fsync directory).
public enum SecureFile {
    /// Refuses a directory that is a symlink, not owned by us, or open to group or others.
    static func checkDirectory(_ path: String) throws(KeyringError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { throw .notFound(path: path) }
            throw .io(path: path, operation: "stat", errno: errno)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .notARegularFile(path: path) }
        try checkOwnerAndMode(path: path, st: st, isDirectory: true)
    }

    /// Who may own a file and which mode bits are tolerated.
    public enum Rule: Sendable {
        /// Our own keys directory: owned by us, nothing for group or others (ssh's rule).
        case ownedPrivate
        /// A systemd credential: systemd writes it 0400 owned by root and grants the service user
        /// read access through an ACL, which shows as group bits (0440). Owner root or us; still
        /// nothing for others.
        case systemdCredential
    }

    static func checkOwnerAndMode(path: String, st: stat, isDirectory: Bool, rule: Rule = .ownedPrivate) throws(KeyringError) {
        let me = geteuid()
        switch rule {
        case .ownedPrivate:
            guard st.st_uid == me else { throw .wrongOwner(path: path, owner: st.st_uid, expected: me) }
            guard st.st_mode & 0o077 == 0 else {
                throw .insecurePermissions(path: path, mode: UInt32(st.st_mode), isDirectory: isDirectory)
            }
        case .systemdCredential:
            guard st.st_uid == me || st.st_uid == 0 else { throw .wrongOwner(path: path, owner: st.st_uid, expected: me) }
            guard st.st_mode & 0o027 == 0 else {
                throw .insecurePermissions(path: path, mode: UInt32(st.st_mode), isDirectory: isDirectory)
            }
        }
    }

    /// Opens an existing file for reading, refusing symlinks, and checks it after opening (no
    /// window between check and use). `O_NONBLOCK`: a FIFO put in a key file's place opens at
    /// once instead of hanging until someone writes to it, and is then refused as not a regular
    /// file; the flag is cleared again for the regular file that passes.
    static func openForReading(_ path: String, rule: Rule = .ownedPrivate) throws(KeyringError) -> (fd: Int32, size: Int) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw .notFound(path: path) }
            if code == ELOOP { throw .notARegularFile(path: path) }
            throw .io(path: path, operation: "open", errno: code)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw .io(path: path, operation: "stat", errno: code)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .notARegularFile(path: path)
        }
        do { try checkOwnerAndMode(path: path, st: st, isDirectory: false, rule: rule) } catch {
            close(fd)
            throw error
        }
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0 else {
            let code = errno
            close(fd)
            throw .io(path: path, operation: "fcntl", errno: code)
        }
        return (fd, Int(st.st_size))
    }

    /// Reads exactly `buffer.count` bytes.
    static func readExactly(fd: Int32, into buffer: UnsafeMutableRawBufferPointer, path: String) throws(KeyringError) {
        var done = 0
        while done < buffer.count {
            let n = read(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "read", errno: errno)
            }
            if n == 0 { throw .malformedKeyFile(path: path, reason: "file is shorter than its header says") }
            done += n
        }
    }

    /// Reads a whole small public file (the manifest, sealed key files).
    static func readAll(_ path: String, rule: Rule = .ownedPrivate, limit: Int = 1 << 20) throws(KeyringError) -> [UInt8] {
        let (fd, size) = try openForReading(path, rule: rule)
        defer { close(fd) }
        guard size <= limit else { throw .malformedManifest(path: path, reason: "file is larger than \(limit) bytes") }
        var bytes = [UInt8](repeating: 0, count: size)
        if size > 0 {
            let result = bytes.withUnsafeMutableBytes { buffer in
                Result { () throws(KeyringError) in try readExactly(fd: fd, into: buffer, path: path) }
            }
            try result.get()
        }
        return bytes
    }

    /// Writes `parts` to `directory/name` atomically with mode 0600: a temporary file is written
    /// and fsynced, renamed over the target, and the directory is fsynced so the rename is durable.
    /// `overwrite: false` refuses to replace an existing file.
    static func writeAtomically(
        directory: String, name: String, overwrite: Bool,
        write body: (Int32, String) throws(KeyringError) -> Void
    ) throws(KeyringError) {
        let target = directory + "/" + name
        if !overwrite, access(target, F_OK) == 0 { throw .alreadyExists(path: target) }
        let suffix = Hex.encode((try? Sodium.randomBytes(count: 6)) ?? [0])
        let temp = directory + "/." + name + ".tmp-" + suffix
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: temp, operation: "create", errno: errno) }
        do throws(KeyringError) {
            // The umask may have been looser than 0077; set the mode explicitly.
            guard fchmod(fd, 0o600) == 0 else { throw KeyringError.io(path: temp, operation: "chmod", errno: errno) }
            try body(fd, temp)
            guard fsync(fd) == 0 else { throw KeyringError.io(path: temp, operation: "fsync", errno: errno) }
        } catch {
            close(fd)
            unlink(temp)
            throw error
        }
        close(fd)
        if !overwrite {
            // link(2) fails if the target appeared meanwhile: no silent replacement.
            guard link(temp, target) == 0 else {
                let code = errno
                unlink(temp)
                if code == EEXIST { throw .alreadyExists(path: target) }
                throw .io(path: target, operation: "link", errno: code)
            }
            unlink(temp)
        } else {
            guard rename(temp, target) == 0 else {
                let code = errno
                unlink(temp)
                throw .io(path: target, operation: "rename", errno: code)
            }
        }
        try syncDirectory(directory)
    }

    static func writeAll(fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws(KeyringError) {
        var done = 0
        while done < buffer.count {
            let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, operation: "write", errno: errno)
            }
            done += n
        }
    }

    static func syncDirectory(_ directory: String) throws(KeyringError) {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw .io(path: directory, operation: "open", errno: errno) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw .io(path: directory, operation: "fsync", errno: errno) }
    }

    /// Creates a directory with mode 0700 (refusing one that exists and is not empty is the
    /// caller's decision).
    static func makeDirectory(_ path: String) throws(KeyringError) {
        if mkdir(path, 0o700) != 0 {
            guard errno == EEXIST else { throw .io(path: path, operation: "mkdir", errno: errno) }
        }
        // Open without following a symlink, then fix the mode on what was opened.
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ELOOP || errno == ENOTDIR { throw .notARegularFile(path: path) }
            throw .io(path: path, operation: "open", errno: errno)
        }
        defer { close(fd) }
        guard fchmod(fd, 0o700) == 0 else { throw .io(path: path, operation: "chmod", errno: errno) }
        try checkDirectory(path)
    }

    /// Overwrites a file's bytes with zeros, fsyncs, unlinks it and fsyncs the directory. On
    /// journaling and copy-on-write file systems and on SSDs the old blocks may survive; the
    /// guarantee that matters comes from the key never having been stored unsealed elsewhere
    /// (docs/CRYPTO.md §Destroying a KEK).
    static func overwriteAndRemove(directory: String, name: String) throws(KeyringError) {
        let path = directory + "/" + name
        // O_NONBLOCK: a FIFO in the file's place must not hang the destroy (refused below).
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            if errno == ENXIO || errno == ELOOP { throw .notARegularFile(path: path) }
            throw .io(path: path, operation: "open", errno: errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let code = errno
            close(fd)
            throw .io(path: path, operation: "stat", errno: code)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .notARegularFile(path: path)
        }
        let zeros = [UInt8](repeating: 0, count: Int(st.st_size))
        let result = zeros.withUnsafeBytes { buffer in
            Result { () throws(KeyringError) in try writeAll(fd: fd, buffer, path: path) }
        }
        let synced = fsync(fd) == 0
        close(fd)
        try result.get()
        guard synced else { throw .io(path: path, operation: "fsync", errno: errno) }
        guard unlink(path) == 0 else { throw .io(path: path, operation: "unlink", errno: errno) }
        try syncDirectory(directory)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isEmptyDirectory(_ path: String) -> Bool {
        guard let dir = opendir(path) else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { return false }
        }
        return true
    }
}
