import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Temporary files that hold registry data (a restore's prepared copy, a verify extraction, a
/// half-written backup) and must not outlive the command, even on Ctrl-C or SIGTERM
/// (docs/OPERATIONS.md §Backups). While any is registered, SIGINT and SIGTERM are handled by a
/// dispatch source (not in signal context): it removes them and exits 130 / 143.
enum TemporaryFiles {
    private static let state = NSLock()
    nonisolated(unsafe) private static var paths: [Int: String] = [:]
    nonisolated(unsafe) private static var directories: [Int: String] = [:]
    nonisolated(unsafe) private static var next = 0
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// Registers `path` (and its -journal, -wal, -shm); returns a token for `remove`.
    static func register(_ path: String) -> Int {
        state.lock()
        defer { state.unlock() }
        installHandlers()
        next += 1
        paths[next] = path
        return next
    }

    /// Registers a scratch directory, removed with everything in it on Ctrl-C or SIGTERM.
    static func registerDirectory(_ path: String) -> Int {
        state.lock()
        defer { state.unlock() }
        installHandlers()
        next += 1
        directories[next] = path
        return next
    }

    /// Forgets `token` without touching the file (it was installed or removed by the caller).
    static func forget(_ token: Int) {
        state.lock()
        paths[token] = nil
        directories[token] = nil
        state.unlock()
    }

    /// Removes a directory and everything below it.
    static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    static func unlinkAll(_ path: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(path + suffix) }
    }

    private static func installHandlers() {
        guard sources.isEmpty else { return }
        for signo in [SIGINT, SIGTERM] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler {
                state.lock()
                for path in paths.values { unlinkAll(path) }
                for path in directories.values { removeTree(path) }
                state.unlock()
                FileHandle.standardError.write(Data("anonreg: interrupted; temporary files removed\n".utf8))
                exit(128 + signo)
            }
            source.resume()
            sources.append(source)
        }
    }
}
