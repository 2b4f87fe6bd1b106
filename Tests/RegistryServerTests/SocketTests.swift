import AnonregTestSupport
import Foundation
import Testing

@testable import RegistryServer

struct SocketPathGuardTests {
    @Test func aMissingPathIsFine() throws {
        let tmp = TemporaryDirectory()
        try SocketPathGuard.prepare(tmp.sub("a.sock"))
    }

    @Test func aStaleSocketIsRemoved() throws {
        let tmp = TemporaryDirectory()
        let path = tmp.sub("stale.sock")
        // Bind and close without listening: a socket file nobody answers on.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        #expect(FileManager.default.fileExists(atPath: path))
        try SocketPathGuard.prepare(path)
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func aRegularFileIsRefused() {
        let tmp = TemporaryDirectory()
        FileManager.default.createFile(atPath: tmp.sub("x.sock"), contents: Data("keep".utf8))
        #expect(throws: ListenError.notASocket(path: tmp.sub("x.sock"))) { try SocketPathGuard.prepare(tmp.sub("x.sock")) }
    }

    @Test func aWorldWritableDirectoryIsRefused() {
        let tmp = TemporaryDirectory()
        chmod(tmp.path, 0o777)
        #expect(throws: ListenError.self) { try SocketPathGuard.prepare(tmp.sub("x.sock")) }
    }

    /// The path a refusal names, or nil when the layout is accepted.
    static func refusedPath(_ socket: String, daemonUID: uid_t = geteuid()) -> String? {
        do {
            try SocketPathGuard.prepare(socket, daemonUID: daemonUID)
            return nil
        } catch .unsafeDirectory(let path, _, _) {
            return path
        } catch {
            return "other: \(error)"
        }
    }

    /// Issue 14 §3: `0770 root:GID` let any clinic in GID rename the socket and bind its own.
    @Test func aGroupWritableRootOwnedDirectoryIsRefused() {
        let tmp = TemporaryDirectory()
        let run = tmp.sub("run")
        mkdir(run, 0o770)
        chown(run, 0, 2500)
        chmod(run, 0o770)
        #expect(Self.refusedPath(run + "/anonreg.sock") == run)
        chmod(run, 0o750)
        #expect(Self.refusedPath(run + "/anonreg.sock") == nil)
    }

    /// Issue 14 §3: a directory owned by a clinic's uid, even 0750, is that clinic's to change.
    @Test func aDirectoryOwnedByAnotherUserIsRefused() {
        let tmp = TemporaryDirectory()
        let run = tmp.sub("run")
        mkdir(run, 0o750)
        chown(run, 65534, 2500)
        #expect(Self.refusedPath(run + "/anonreg.sock") == run)
        // The daemon's own uid may own it (the shipped units: anonreg:anonreg-clinic).
        #expect(Self.refusedPath(run + "/anonreg.sock", daemonUID: 65534) == nil)
    }

    /// Every ancestor counts: a writable parent lets its writers rename the whole directory.
    @Test func aWritableAncestorIsRefused() {
        let tmp = TemporaryDirectory()
        let middle = tmp.sub("shared")
        mkdir(middle, 0o775)
        chmod(middle, 0o775)
        mkdir(middle + "/run", 0o750)
        #expect(Self.refusedPath(middle + "/run/anonreg.sock") == middle)
        // Sticky, as /tmp is: nobody may rename what is not theirs there.
        chmod(middle, 0o1777)
        #expect(Self.refusedPath(middle + "/run/anonreg.sock") == nil)
    }

    /// A symbolic link on the way is checked as a link (its owner) and through its target.
    @Test func aForeignSymbolicLinkOrTargetIsRefused() {
        let tmp = TemporaryDirectory()
        let foreign = tmp.sub("foreign")
        mkdir(foreign, 0o750)
        chown(foreign, 65534, 65534)
        symlink(foreign, tmp.sub("link"))
        #expect(Self.refusedPath(tmp.sub("link") + "/anonreg.sock") == foreign)
        let mine = tmp.sub("mine")
        mkdir(mine, 0o750)
        let link = tmp.sub("theirs")
        symlink(mine, link)
        lchown(link, 65534, 65534)
        #expect(Self.refusedPath(link + "/anonreg.sock") == link)
    }
}

struct SystemdNotifierTests {
    @Test func withoutNotifySocketNothingIsSent() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.send("READY=1"))
        #expect(notifier.watchdogInterval == nil)
    }

    @Test func messagesReachTheNotifySocket() throws {
        let tmp = TemporaryDirectory()
        let path = tmp.sub("notify")
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(rc == 0)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"])
        #expect(notifier.watchdogInterval == .seconds(1))
        notifier.ready()
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer[..<max(n, 0)], as: UTF8.self).hasPrefix("READY=1"))
    }
}
