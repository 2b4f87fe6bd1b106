import Foundation
import Testing
import UnixHTTP

#if canImport(Glibc)
    import Glibc
#endif

/// The one socket client every anonreg client is built on, against a fake daemon that answers
/// each request with the next canned answer: keep-alive, chunked bodies, `Connection: close`,
/// answers a hostile listener could send, which must be refused, never trap, and the rule for
/// sending a request again on a stale connection.
struct UnixHTTPConnectionTests {
    /// A Unix socket in a fresh directory, served by a thread: for each accepted connection it
    /// reads one request head at a time and plays the next step.
    final class FakeDaemon: @unchecked Sendable {
        /// What the daemon does with one request: write `bytes` (maybe none), then close the
        /// connection when `close` is set.
        struct Step {
            var bytes: [UInt8]
            var close: Bool

            static func answer(_ text: String, close: Bool = false) -> Step {
                Step(bytes: Array(text.utf8), close: close || text.contains("Connection: close"))
            }
            /// Reads the request and closes the connection without answering.
            static let hangUp = Step(bytes: [], close: true)
        }

        let path: String
        private let listener: Int32
        private var listening = true
        private var steps: [Step]
        private let lock = NSLock()
        private var counts = (connections: 0, requests: 0, closed: 0)
        /// Connections accepted, request heads read, connections the daemon closed.
        var connections: Int { lock.withLock { counts.connections } }
        var requests: Int { lock.withLock { counts.requests } }
        var closed: Int { lock.withLock { counts.closed } }

        convenience init(_ answers: [String]) throws { try self.init(steps: answers.map { Step.answer($0) }) }

        init(steps: [Step], backlog: Int32 = 8, serving: Bool = true) throws {
            let dir = NSTemporaryDirectory() + "unixhttp-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            path = dir + "/s.sock"
            self.steps = steps
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, listen(listener, backlog) == 0 else { throw UnixSocket.Failure.io("fake daemon: bind or listen failed") }
            if serving { Thread.detachNewThread { [self] in serve() } }
        }

        deinit { stop() }

        /// Closes the listener (a connect waiting on it is refused).
        func stop() {
            lock.withLock {
                if listening { close(listener) }
                listening = false
            }
        }

        /// Waits up to 5 s until the daemon closed `count` connections.
        func waitUntilClosed(_ count: Int) {
            for _ in 0..<500 where closed < count { usleep(10_000) }
        }

        private func next() -> Step? {
            lock.withLock { steps.isEmpty ? nil : steps.removeFirst() }
        }

        private func serve() {
            while true {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                lock.withLock { counts.connections += 1 }
                var pending: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                loop: while true {
                    // One request head (a body, if any, arrives with it and is dropped).
                    while !pending.containsHeadEnd {
                        let n = read(fd, &chunk, chunk.count)
                        if n <= 0 { break loop }
                        pending += chunk[0..<n]
                    }
                    pending.removeAll()
                    lock.withLock { counts.requests += 1 }
                    guard let step = next() else { break }
                    var sent = 0
                    while sent < step.bytes.count {
                        let n = step.bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
                        if n <= 0 { break loop }
                        sent += n
                    }
                    if step.close { break }
                }
                close(fd)
                lock.withLock { counts.closed += 1 }
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

    // MARK: Sending again on a stale connection (the rule in UnixHTTPConnection.request)

    /// The daemon closed a kept-alive connection while it was idle: the request meets EPIPE
    /// before the socket accepted any of it, so it never reached the daemon and is sent again,
    /// a POST too.
    @Test func aRequestOnAConnectionClosedWhileIdleIsSentAgain() throws {
        let daemon = try FakeDaemon(steps: [
            .answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close: true),
            .answer("HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew"),
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "ok")
        daemon.waitUntilClosed(1)
        let reply = try connection.request("POST", "/b", body: Array("{}".utf8), retryOnStaleConnection: true)
        #expect(reply.status == 201 && reply.text == "new")
        #expect(daemon.requests == 2 && daemon.connections == 2)
    }

    /// A POST the daemon read whole before the connection closed without an answer may have been
    /// carried out: it is not sent again, its caller gets the error.
    @Test func aPOSTThatReachedTheDaemonIsNeverSentTwice() throws {
        let daemon = try FakeDaemon(steps: [
            .answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            .hangUp,
            .answer("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "ok")
        #expect(throws: UnixSocket.Failure.self) {
            _ = try connection.request("POST", "/b", body: Array("{}".utf8), retryOnStaleConnection: true)
        }
        #expect(daemon.requests == 2, "the POST reached the daemon once")
        #expect(daemon.connections == 1)
    }

    /// The same close before any answer byte, for a GET (safe to send twice): sent again.
    @Test func aGETClosedBeforeAnyAnswerByteIsSentAgain() throws {
        let daemon = try FakeDaemon(steps: [
            .answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            .hangUp,
            .answer("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"),
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "ok")
        #expect(try connection.request("GET", "/b", retryOnStaleConnection: true).text == "yes")
        #expect(daemon.requests == 3 && daemon.connections == 2)
    }

    /// An answer that cannot be parsed is the daemon's (or an impostor's) answer, not a stale
    /// connection: never sent again, even a GET on a reused connection.
    @Test func aProtocolErrorIsNeverRetried() throws {
        let daemon = try FakeDaemon([
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "HTTP/1.1 999 Nope\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes",
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "ok")
        #expect {
            _ = try connection.request("GET", "/b", retryOnStaleConnection: true)
        } throws: { error in
            if case .io(let what) = error as? UnixSocket.Failure { return what.hasPrefix("unexpected answer") }
            return false
        }
        #expect(daemon.requests == 2 && daemon.connections == 1)
    }

    /// The daemon closing in the middle of an answer is not a stale connection either.
    @Test func anAnswerCutShortIsNeverRetried() throws {
        let daemon = try FakeDaemon(steps: [
            .answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            .answer("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", close: true),
            .answer("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"),
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "ok")
        #expect(throws: UnixSocket.Failure.self) { _ = try connection.request("GET", "/b", retryOnStaleConnection: true) }
        #expect(daemon.requests == 2 && daemon.connections == 1)
    }

    // MARK: Limits

    /// Trailer fields after the last chunk count against the head's limit (1 MiB), however short
    /// each line is.
    @Test func chunkTrailersLargerThanAHeadAreRefused() throws {
        let trailers = String(repeating: "X-Trailer: 0123456789\r\n", count: HTTPResponseParser.maxHead / 20)
        let daemon = try FakeDaemon([
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" + trailers + "\r\n"
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect {
            _ = try connection.request("GET", "/x")
        } throws: { error in
            error as? UnixSocket.Failure == .io("unexpected answer: trailers larger than 1 MiB")
        }
    }

    /// Many small chunks with extensions, over many reads: each is parsed where it lies in the
    /// buffer (what follows it is no longer moved to the front per chunk).
    @Test func manySmallChunksAreDecoded() throws {
        let count = 200_000
        var answer = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        for _ in 0..<count { answer += Array("1;x\r\na\r\n".utf8) }
        answer += Array("0\r\n\r\n".utf8)
        let daemon = try FakeDaemon(steps: [.init(bytes: answer, close: false)])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 30)
        let reply = try connection.request("GET", "/x")
        #expect(reply.body.count == count && reply.body.allSatisfy { $0 == 0x61 })
    }

    @Test func chunkTrailersWithinTheLimitAreSkipped() throws {
        let daemon = try FakeDaemon([
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-One: 1\r\nX-Two: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes",
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect(try connection.request("GET", "/a").text == "abc")
        #expect(try connection.request("GET", "/b").text == "yes", "the trailers were read to their end")
    }

    /// A body with neither Content-Length nor chunked runs to the end of the connection, no
    /// larger than a Content-Length body may be (64 MiB): reading stops there.
    @Test func aBodyToTheEndOfTheConnectionIsCappedLikeALengthOne() throws {
        let daemon = try FakeDaemon(steps: [
            .init(
                bytes: Array("HTTP/1.1 200 OK\r\n\r\n".utf8) + [UInt8](repeating: 0x61, count: HTTPResponseParser.maxBody + 1), close: true)
        ])
        let connection = UnixHTTPConnection(path: daemon.path, timeout: 5)
        #expect {
            _ = try connection.request("GET", "/x")
        } throws: { error in
            error as? UnixSocket.Failure == .io("unexpected answer: body larger than 64 MiB")
        }
        let fits = try FakeDaemon(steps: [.answer("HTTP/1.1 200 OK\r\n\r\nto the end", close: true)])
        #expect(try UnixHTTPConnection(path: fits.path, timeout: 5).request("GET", "/x").text == "to the end")
    }

    /// A connect that cannot complete (the listener's backlog is full and nobody accepts) ends
    /// after the timeout instead of blocking for good.
    @Test func aConnectThatCannotCompleteTimesOut() throws {
        let daemon = try FakeDaemon(steps: [], backlog: 0, serving: false)
        defer { daemon.stop() }
        // Fill the backlog: non-blocking connects until the kernel says it is full.
        var fillers: [Int32] = []
        defer { for fd in fillers { close(fd) } }
        while fillers.count < 64 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(daemon.path.utf8)) }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            fillers.append(fd)
            if rc != 0 { break }
        }
        let outcome = OutcomeBox()
        let path = daemon.path
        Thread.detachNewThread {
            let started = Date()
            let result = Result { () throws(UnixSocket.Failure) -> Int32 in try UnixSocket.connect(path, timeout: 1) }
            if case .success(let fd) = result { close(fd) }
            outcome.set(result.map { _ in () }, Date().timeIntervalSince(started))
        }
        let ended = outcome.wait(seconds: 10)
        // On failure, stop() refuses the waiting connect so that its thread ends.
        #expect(ended, "connect still blocked after 10 s with a 1 s timeout")
        if ended {
            #expect(outcome.timedOut, "\(String(describing: outcome.result))")
            #expect(outcome.seconds < 5)
        }
    }

    final class OutcomeBox: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var stored: (Result<Void, UnixSocket.Failure>, Double)?
        func set(_ result: Result<Void, UnixSocket.Failure>, _ seconds: Double) {
            lock.withLock { stored = (result, seconds) }
            done.signal()
        }
        func wait(seconds: Double) -> Bool { done.wait(timeout: .now() + seconds) == .success }
        var result: Result<Void, UnixSocket.Failure>? { lock.withLock { stored?.0 } }
        var seconds: Double { lock.withLock { stored?.1 ?? 0 } }
        var timedOut: Bool {
            guard case .failure(.timedOut) = result else { return false }
            return true
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
