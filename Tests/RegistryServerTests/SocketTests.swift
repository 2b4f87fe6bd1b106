import Foundation
import Testing
import AnonregTestSupport
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
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
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
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        #expect(rc == 0)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"])
        #expect(notifier.watchdogInterval == .seconds(1))
        notifier.ready()
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, 0)
        #expect(String(decoding: buffer[..<max(n, 0)], as: UTF8.self).hasPrefix("READY=1"))
    }
}
