import Foundation
import RegistryProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// What the CLI checks before it sends anything over the socket (docs/OPERATIONS.md §Socket):
/// a request may carry a patient code, so a socket that someone else could have put in place
/// must not get it. It needs no key and no configuration:
///
/// - the socket's directory and every ancestor are owned by a trusted uid and writable by nobody
///   else, unless sticky (the daemon's own rule, RegistryProtocol `SocketDirectories`);
/// - the socket file is owned by a trusted uid;
/// - the process listening on it (`SO_PEERCRED` of the connection: the daemon, or systemd for a
///   socket-activated one) runs as a trusted uid.
///
/// Trusted uids: root, the calling user (their own daemon, as `make run` starts it), the system
/// user `anonreg` when it exists (the shipped units), and `ANONREG_DAEMON_USER` (a user name or
/// uid) for a daemon run as another user.
enum SocketTrust {
    static func trustedUIDs(environment: [String: String] = ProcessInfo.processInfo.environment) -> Set<UInt32> {
        var trusted: Set<UInt32> = [0, UInt32(geteuid())]
        for name in ["anonreg", environment["ANONREG_DAEMON_USER"]].compactMap({ $0 }) where !name.isEmpty {
            if let uid = UInt32(name) {
                trusted.insert(uid)
            } else if let entry = getpwnam(name) {
                trusted.insert(UInt32(entry.pointee.pw_uid))
            }
        }
        return trusted
    }

    /// Refuses a socket path whose directories or file someone untrusted could have replaced. A
    /// missing socket is left to `connect` to report.
    static func check(_ socketPath: String) throws(UnixHTTPClient.Failure) {
        let trusted = trustedUIDs()
        if let problem = SocketDirectories.firstProblem(socketPath: socketPath, trusted: trusted) {
            throw .untrustedSocket(
                "refusing to send anything to \(socketPath): \(problem.path) \(problem.problem), so someone else could have put their own socket there. Ask the registry's admin to fix it: \(problem.fix). A daemon run as another user: set ANONREG_DAEMON_USER."
            )
        }
        var st = stat()
        guard lstat(socketPath, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw .untrustedSocket("refusing to send anything to \(socketPath): it is not a socket")
        }
        guard trusted.contains(UInt32(st.st_uid)) else {
            throw .untrustedSocket(
                "refusing to send anything to \(socketPath): the socket is owned by uid \(st.st_uid), which is not root, this user or the daemon's user; someone else may have put it there. A daemon run as another user: set ANONREG_DAEMON_USER."
            )
        }
    }

    /// Refuses a connection whose listener runs as an untrusted uid.
    static func checkListener(fd: Int32, socketPath: String) throws(UnixHTTPClient.Failure) {
        var credentials = PeerUCred()
        var length = socklen_t(MemoryLayout<PeerUCred>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else {
            throw .untrustedSocket(
                "refusing to send anything to \(socketPath): cannot read who listens on it (\(String(cString: strerror(errno))))")
        }
        guard trustedUIDs().contains(credentials.uid) else {
            throw .untrustedSocket(
                "refusing to send anything to \(socketPath): the process listening on it runs as uid \(credentials.uid), which is not root, this user or the daemon's user. A daemon run as another user: set ANONREG_DAEMON_USER."
            )
        }
    }
}

/// `struct ucred` (Glibc hides it without _GNU_SOURCE): pid, uid, gid.
struct PeerUCred {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
