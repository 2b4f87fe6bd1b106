import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One anonregd per state directory. The daemon takes an exclusive `flock(2)` on
/// `STATE_DIR/.anonregd.lock` before it loads a key, opens the database, removes a stale
/// temporary copy or runs a sweep, and holds it until it exits (the kernel releases it even on
/// SIGKILL). A second daemon on the same state directory, whatever socket it was given, refuses
/// at that point, having done nothing.
final class StateDirectoryLock {
    static let fileName = ".anonregd.lock"
    let fd: Int32

    enum Failure: Error, CustomStringConvertible {
        case held(path: String)
        case io(path: String, operation: String, errno: Int32)

        var description: String {
            switch self {
            case .held(let path):
                "another anonregd already serves \((path as NSString).deletingLastPathComponent) (it holds \(path)); refusing to start, nothing was touched"
            case .io(let path, let operation, let code):
                "\(operation) \(path) failed: \(String(cString: strerror(code)))"
            }
        }
    }

    init(stateDirectory: String) throws(Failure) {
        let path = stateDirectory + "/" + Self.fileName
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            throw code == EWOULDBLOCK ? .held(path: path) : .io(path: path, operation: "lock", errno: code)
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
