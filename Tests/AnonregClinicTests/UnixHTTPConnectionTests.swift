import Foundation
import Testing
import UnixHTTP

#if canImport(Glibc)
    import Glibc
#endif

/// The one socket client every anonreg client is built on, against a fake daemon that answers
/// each request with the next canned answer: keep-alive, chunked bodies, `Connection: close`,
/// and answers a hostile listener could send, which must be refused, never trap.
struct UnixHTTPConnectionTests {
    /// A Unix socket in a fresh directory, served by a thread: for each accepted connection it
    /// reads one request head at a time and writes the next answer in `answers`.
    final class FakeDaemon: @unchecked Sendable {
        let path: String
        private let listener: Int32
        private var answers: [String]
        private let lock = NSLock()
        private(set) var connections = 0

        init(_ answers: [String]) throws {
            let dir = NSTemporaryDirectory() + "unixhttp-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            path = dir + "/s.sock"
            self.answers = answers
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, listen(listener, 8) == 0 else { throw UnixSocket.Failure.io("fake daemon: bind or listen failed") }
            Thread.detachNewThread { [self] in serve() }
        }

        deinit { close(listener) }

        private func next() -> String? {
            lock.lock()
            defer { lock.unlock() }
            return answers.isEmpty ? nil : answers.removeFirst()
        }

        private func serve() {
            while true {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                lock.lock()
                connections += 1
                lock.unlock()
                var pending: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                loop: while true {
                    // One request head (the tests send no bodies).
                    while !pending.containsHeadEnd {
                        let n = read(fd, &chunk, chunk.count)
                        if n <= 0 { break loop }
                        pending += chunk[0..<n]
                    }
                    pending.removeAll()
                    guard let answer = next() else { break }
                    let bytes = Array(answer.utf8)
                    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if answer.contains("Connection: close") { break }
                }
                close(fd)
            }
        }
    }

    @Test func keepAliveAndChunkedBodies() throws {
        let daemon = try FakeDaemon([
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "hello")
        #expect(try connection.request("GET", "/b").text == "abcde")
        let third = try connection.request("GET", "/c")
        #expect(third.status == 404)
        #expect(daemon.connections == 1, "three requests on one kept-alive connection")
    }

    @Test func connectionCloseOpensAFreshConnectionForTheNextRequest() throws {
        let daemon = try FakeDaemon([
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes",
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "ok")
        #expect(try connection.request("GET", "/b").text == "yes")
        #expect(daemon.connections == 2)
    }

    /// What something else listening at the socket's path could send: each refused as an error.
    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
        "HTTP/1.1 999 Nope\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort",
    ])
    func hostileAnswersAreRefused(_ answer: String) throws {
        let daemon = try FakeDaemon([answer])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(throws: UnixSocket.Failure.self) { _ = try connection.request("GET", "/x") }
    }

    @Test func nobodyListeningIsAConnectFailure() {
        let connection = UnixHTTPConnection(path: NSTemporaryDirectory() + "no-such-\(UUID().uuidString.prefix(8)).sock", timeout: 5)
        #expect {
            _ = try connection.request("GET", "/x")
        } throws: { error in
            if case .connect = error as? UnixSocket.Failure { return true }
            return false
        }
    }
}

extension [UInt8] {
    fileprivate var containsHeadEnd: Bool {
        guard count >= 4 else { return false }
        for i in 0...(count - 4) where self[i] == 13 && self[i + 1] == 10 && self[i + 2] == 13 && self[i + 3] == 10 { return true }
        return false
    }
}
