import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel's word on who is at the other end of a Unix socket connection (`SO_PEERCRED`).
/// Authorisation uses `uid` and `gid`; `pid` appears only in logs.
public struct PeerCredentials: Sendable, Equatable, CustomStringConvertible {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public var description: String { "pid \(pid) uid \(uid) gid \(gid)" }
}

/// The layout of Linux's `struct ucred` (pid_t, uid_t, gid_t). Glibc hides `struct ucred`
/// without `_GNU_SOURCE`, so it is declared here; the size is checked against the kernel's
/// 12 bytes when read.
struct UCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// Credentials of open connections, read once when each connection is accepted and forgotten
/// when it closes.
final class PeerCredentialsTable: Sendable {
    private let entries = Mutex<[ObjectIdentifier: PeerCredentials]>([:])

    /// Reads `SO_PEERCRED` on a freshly accepted channel (on its event loop; the future is
    /// already complete there) and remembers it until the channel closes.
    func register(_ channel: any Channel) -> EventLoopFuture<Void> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(PeerCredentialsUnavailable())
        }
        precondition(MemoryLayout<UCred>.size == 12, "struct ucred is 12 bytes on Linux")
        let future: EventLoopFuture<UCred> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return future.map { cred in
            let id = ObjectIdentifier(channel)
            self.entries.withLock { $0[id] = PeerCredentials(pid: cred.pid, uid: cred.uid, gid: cred.gid) }
            channel.closeFuture.whenComplete { _ in
                _ = self.entries.withLock { $0.removeValue(forKey: id) }
            }
        }
    }

    func credentials(of channel: any Channel) -> PeerCredentials? {
        entries.withLock { $0[ObjectIdentifier(channel)] }
    }

    var openConnections: Int { entries.withLock { $0.count } }
}

struct PeerCredentialsUnavailable: Error {}
