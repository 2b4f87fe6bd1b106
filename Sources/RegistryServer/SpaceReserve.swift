import Logging
import Metrics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Disk full without losing reads (docs/ROBUSTNESS.md §Disk full, issue 8): every read appends
/// an audit entry before it is answered, so on a disk with no room reads would fail too. The
/// daemon keeps a reserve ("ballast") file, `STATE_DIR/.space-reserve`, of real blocks. When a
/// request fails with storage full, the daemon enters storage-full mode: it deletes the reserve,
/// which frees room for the audit entries of reads, and refuses data writes before they reach
/// SQLite. It leaves the mode once the file system has room for the reserve plus a margin again
/// (checked on every refused write and periodically), recreating the reserve first.
public final class SpaceReserve: Sendable {
    public static let fileName = ".space-reserve"

    /// The actions refused up front in storage-full mode: everything that adds or rewrites
    /// registry data. Reads, OPRF evaluations, withdrawals and sweeps (which erase) still run.
    static let refusedActions: Set<String> = [
        "enrol", "link", "add-checkup", "reissue-code", "anonymous-episode", "rewrap", "rotate-kek", "stage-kek",
    ]

    public let path: String
    let directory: String
    /// Size of the reserve; 0 disables it (and the mode).
    public let bytes: Int64
    let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var full = false
        var recovering = false
    }

    public init(stateDirectory: String, mebibytes: Int, logger: Logger) {
        directory = stateDirectory
        path = stateDirectory + "/" + Self.fileName
        bytes = Int64(max(0, mebibytes)) * 1024 * 1024
        self.logger = logger
    }

    /// No reserve: the daemon behaves as without one (tests, the request fuzzer).
    public static func disabled(logger: Logger) -> SpaceReserve {
        SpaceReserve(stateDirectory: "/nonexistent", mebibytes: 0, logger: logger)
    }

    public var isEnabled: Bool { bytes > 0 }

    /// Whether the daemon is in storage-full mode.
    public var isStorageFull: Bool { state.withLock { $0.full } }

    /// Free bytes for an unprivileged writer on the state directory's file system.
    var freeBytes: Int64? {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    /// What the file system must have free before the mode ends: the reserve, then as much again.
    var bytesNeededToLeave: Int64 { bytes + max(bytes, 1024 * 1024) }

    /// At start: makes sure the reserve exists with its full size. Without room for it the
    /// daemon starts in storage-full mode.
    public func prepare() {
        publish(full: false)
        guard isEnabled else {
            unlink(path)
            return
        }
        var info = stat()
        if stat(path, &info) == 0, Int64(info.st_size) == bytes, Int64(info.st_blocks) * 512 >= bytes { return }
        switch create() {
        case 0:
            logger.notice("space reserve created", metadata: ["path": "\(path)", "bytes": "\(bytes)"])
        case let code where code == ENOSPC || code == EFBIG || code == EDQUOT:
            enter(reason: "no room for the space reserve at start")
        case let code:
            logger.error(
                "the space reserve could not be created; a full disk will refuse reads",
                metadata: [
                    "path": "\(path)", "errno": "\(code)",
                ])
        }
    }

    /// A request failed with storage full (SQLite said so): enter the mode, freeing the reserve.
    public func storageFullObserved() {
        guard isEnabled else { return }
        enter(reason: "a write failed with storage full")
    }

    /// Whether a request with this audit action must be refused now, before it touches the
    /// database. In storage-full mode, checks first whether space has returned.
    func refuses(action: String?) -> Bool {
        guard let action, Self.refusedActions.contains(action), isStorageFull else { return false }
        Counter(label: "anonreg_storage_full_refused_total").increment()
        return !recoverIfSpaceReturned()
    }

    /// Leaves storage-full mode when the file system has room for the reserve and a margin
    /// again; recreates the reserve first. Returns whether the daemon is out of the mode.
    @discardableResult
    public func recoverIfSpaceReturned() -> Bool {
        let start = state.withLock { state -> Bool? in
            guard state.full else { return nil }
            guard !state.recovering else { return false }
            state.recovering = true
            return true
        }
        guard let start else { return true }
        guard start else { return false }
        var recovered = false
        defer {
            state.withLock { state in
                state.recovering = false
                if recovered { state.full = false }
            }
            if recovered { publish(full: false) }
        }
        guard let free = freeBytes, free >= bytesNeededToLeave else { return false }
        let code = create()
        guard code == 0 else {
            logger.warning(
                "space returned but the space reserve could not be recreated; still refusing data writes",
                metadata: ["errno": "\(code)"])
            return false
        }
        recovered = true
        logger.notice(
            "storage-full mode ended: space reserve recreated, data writes accepted again",
            metadata: [
                "free.bytes": "\(free)", "reserve.bytes": "\(bytes)",
            ])
        return true
    }

    private func enter(reason: String) {
        let entered = state.withLock { state -> Bool in
            if state.full { return false }
            state.full = true
            return true
        }
        guard entered else { return }
        let removed = unlink(path) == 0
        if removed { syncDirectory() }
        publish(full: true)
        logger.critical(
            "storage-full mode: data writes are refused until space returns; reads continue",
            metadata: [
                "reason": "\(reason)", "reserve.released.bytes": "\(removed ? bytes : 0)", "free.bytes": "\(freeBytes ?? -1)",
            ])
    }

    private func publish(full: Bool) {
        Gauge(label: "anonreg_storage_full").record(full ? 1 : 0)
        Gauge(label: "anonreg_space_reserve_bytes").record(full || !isEnabled ? 0 : bytes)
    }

    /// Writes the reserve with real blocks (posix_fallocate, or zeros where the file system
    /// cannot allocate), fsyncs it and its directory. Returns 0 or the errno; a partial file is
    /// removed.
    private func create() -> Int32 {
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { return errno }
        var failure: Int32 = posix_fallocate(fd, 0, off_t(bytes))
        if failure == EOPNOTSUPP || failure == EINVAL {
            failure = 0
            let chunk = [UInt8](repeating: 0, count: 64 * 1024)
            var written: Int64 = 0
            while written < bytes {
                let count = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, Int(min(Int64($0.count), bytes - written))) }
                if count < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                written += Int64(count)
            }
        }
        if failure == 0, fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            return failure
        }
        syncDirectory()
        return 0
    }

    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }
}
