import AnonregTestSupport
import Foundation
import Testing

/// Socket safety, systemd integration and shutdown.
@Suite(.serialized) struct DaemonLifecycleTests {
    @Test func theSocketIsPrivateToOwnerAndGroup() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        var st = stat()
        #expect(lstat(d.socket, &st) == 0)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
        #expect(st.st_mode & 0o777 == 0o660)
        #expect(d.tmp.mode(of: d.stateDir) == 0o750)
    }

    @Test func aSecondDaemonRefusesAndTheFirstKeepsServing() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let second = try Binaries.run("anonregd", ["--config", d.configPath])
        #expect(second.status == 5)
        #expect(second.stderr.contains("another anonregd already answers"))
        #expect(try d.request("GET", "/v1/health").status == 200)
    }

    @Test func aStaleSocketIsRemoved() throws {
        let d = try DaemonHarness()
        try d.start()
        #expect(d.stop(signal: SIGKILL) != 0)
        #expect(FileManager.default.fileExists(atPath: d.socket), "SIGKILL leaves the socket file behind")
        try d.start()
        defer { d.stop() }
        #expect(try d.request("GET", "/v1/health").status == 200)
    }

    @Test func aFileThatIsNotASocketIsNeverReplaced() throws {
        let d = try DaemonHarness()
        FileManager.default.createFile(atPath: d.socket, contents: Data("precious".utf8))
        let result = try Binaries.run("anonregd", ["--config", d.configPath])
        #expect(result.status == 5)
        #expect(try String(contentsOfFile: d.socket, encoding: .utf8) == "precious")
    }

    @Test func aWorldWritableSocketDirectoryIsRefused() throws {
        let d = try DaemonHarness()
        chmod(d.stateDir, 0o777)
        let result = try Binaries.run("anonregd", ["--config", d.configPath])
        #expect(result.status == 5)
        #expect(result.stderr.contains("writable by others"))
    }

    @Test func sigtermExitsZeroAndRemovesTheSocket() throws {
        let d = try DaemonHarness()
        try d.start()
        #expect(d.stop() == 0)
        #expect(!FileManager.default.fileExists(atPath: d.socket))
    }

    @Test func theDaemonIsNotDumpable() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let pid = try #require(d.pid)
        // /proc/PID/status of a non-dumpable process is owned by root and the umask is 0077.
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        #expect(status.contains("Umask:\t0077"))
        let coreLimit = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        #expect(coreLimit.split(separator: "\n").contains { $0.hasPrefix("Max core file size") && $0.contains(" 0 ") })
    }

    /// READY=1 arrives only once the socket accepts connections.
    @Test func readyIsSentOnlyAfterTheSocketAnswers() throws {
        let d = try DaemonHarness()
        let notifyPath = d.tmp.sub("notify.sock")
        let listener = try DatagramListener(path: notifyPath)
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notifyPath
        let process = try Spawned.start(Binaries.path("anonregd"), ["--config", d.configPath], environment: env)
        var stopped = false
        defer {
            if !stopped {
                process.signal(SIGTERM)
                process.wait()
            }
        }
        let message = try #require(listener.receive(timeoutSeconds: 20))
        // At the moment READY=1 arrives, a connection must already succeed.
        let answered = try d.request("GET", "/v1/health")
        #expect(message.contains("READY=1"))
        #expect(answered.status == 200)
        process.signal(SIGTERM)
        let stopping = listener.receive(timeoutSeconds: 20)
        #expect(stopping?.contains("STOPPING=1") == true)
        #expect(process.wait() == 0)
        stopped = true
    }

    @Test func socketActivationAdoptsTheInheritedSocket() throws {
        let d = try DaemonHarness()
        let activated = d.tmp.sub("activated.sock")
        let process = try Spawned.start(
            "/usr/bin/systemd-socket-activate",
            ["-l", activated, Binaries.path("anonregd"), "--config", d.configPath],
            stdout: d.tmp.sub("activate.log"))
        defer {
            process.signal(SIGTERM)
            process.wait()
        }
        var reply: DaemonHarness.Reply? = nil
        for _ in 0..<200 where reply?.status != 200 {
            reply = try? d.request("GET", "/v1/health", socket: activated)
            usleep(50_000)
        }
        #expect(reply?.status == 200)
        // It served on the inherited socket and did not bind its configured path.
        #expect(!FileManager.default.fileExists(atPath: d.socket))
    }

    /// SIGTERM during a burst of writes: every write answered 201 is there after restart.
    @Test func sigtermDuringWritesLosesNoAcknowledgedWrite() async throws {
        let d = try DaemonHarness()
        try d.start()
        let acknowledged = AckBox()
        let harness = d
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    for _ in 0..<200 {
                        guard let reply = try? harness.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()),
                            reply.status == 201, let handle = reply.string("case")
                        else { return }
                        acknowledged.add(handle)
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(700))
                if let pid = harness.pid { kill(pid, SIGTERM) }
            }
        }
        #expect(d.stop() == 0, "SIGTERM exits 0")
        let handles = acknowledged.all
        #expect(handles.count > 0)
        try d.start()
        defer { d.stop() }
        for handle in handles {
            #expect(try d.request("GET", "/v1/cases/\(handle)").status == 200)
        }
    }
}

final class AckBox: @unchecked Sendable {
    private let lock = NSLock()
    private var handles: [String] = []
    func add(_ h: String) { lock.withLock { handles.append(h) } }
    var all: [String] { lock.withLock { handles } }
}

/// A Unix datagram socket standing in for systemd's NOTIFY_SOCKET.
final class DatagramListener: @unchecked Sendable {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    deinit { close(fd) }

    func receive(timeoutSeconds: Int) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeoutSeconds * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }
}
