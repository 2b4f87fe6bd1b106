import AnonregTestSupport
import Foundation
import Testing

/// Issue 23 §6: something else at the socket's path (or a hostile forwarded socket) answers the
/// CLI with malformed sizes. The CLI must refuse each answer with a clear error, never
/// trap (exit 4, as for any daemon that cannot be talked to: docs/OPERATIONS.md §Exit codes).
@Suite(.serialized) struct HostileAnswerTests {
    /// A one-shot server: accepts one connection, reads the request head, sends HEX, closes.
    static let server = #"""
        import os, socket, sys
        path, answer = sys.argv[1], bytes.fromhex(sys.argv[2])
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(1)
        print("ready", flush=True)
        c, _ = s.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        c.sendall(answer)
        c.close()
        """#

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc\r\n0\r\n\r\n",
    ])
    func theCLIRefusesAHostileAnswer(_ answer: String) throws {
        let tmp = TemporaryDirectory()
        let socket = tmp.sub("fake.sock")
        let out = tmp.sub("server.out")
        let hex = Array(answer.utf8).map { String(format: "%02x", $0) }.joined()
        let server = try Spawned.start("/usr/bin/python3", ["-c", Self.server, socket, hex], stdout: out)
        defer {
            server.signal(SIGKILL)
            server.wait()
        }
        for _ in 0..<200 where !((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("ready") { usleep(20_000) }
        let result = try Binaries.run("anonreg", ["health", "--socket", socket])
        #expect(result.status == 4, "exit \(result.status): \(result.stderr)")
        #expect(result.stderr.contains("unexpected answer from anonregd"), "\(result.stderr)")
    }
}
