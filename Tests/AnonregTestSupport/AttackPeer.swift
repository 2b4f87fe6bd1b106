import Foundation

/// A hostile or careless local peer for the resource-limit tests (docs/ROBUSTNESS.md §Resource
/// limits): a small Python program run as another uid (setpriv), so that the daemon sees a
/// real, separate peer through SO_PEERCRED. Each mode prints one JSON line on stdout.
public enum AttackPeer {
    /// The modes:
    /// - `hold SOCKET N SECONDS`: opens up to N connections (non-blocking connect; stops at the
    ///   first refusal of the kernel's backlog), waits a moment, counts how many the daemon kept
    ///   open, prints `{"opened":…,"alive":…}`, then holds them for SECONDS.
    /// - `trickle SOCKET INTERVAL MAX_SECONDS head|body`: sends a request one byte every INTERVAL
    ///   seconds (the headers too with `head`; after complete headers announcing a 200-byte body
    ///   with `body`) until the daemon answers or closes, or MAX_SECONDS pass; prints
    ///   `{"sent":…,"seconds":…,"closed":…,"answer":"…"}`.
    /// - `requests SOCKET N METHOD PATH`: N keep-alive requests on one connection; prints
    ///   `{"statuses":{"403":N,…},"last":"…", "closed": …}`.
    /// - `raw SOCKET HEX`: sends the bytes, prints `{"answer":"…"}` with what came back.
    static let script = #"""
        import json, os, socket, sys, time

        def connect(path, blocking=True):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(blocking)
            s.connect(path)
            return s

        def read_answer(s, timeout):
            s.settimeout(timeout)
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return data, True
                    data += chunk
                    head, sep, rest = data.partition(b"\r\n\r\n")
                    if sep:
                        length = 0
                        for line in head.split(b"\r\n")[1:]:
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value.strip())
                        if len(rest) >= length:
                            return data, False
            except socket.timeout:
                return data, False
            except (ConnectionResetError, BrokenPipeError):
                return data, True

        mode, path = sys.argv[1], sys.argv[2]
        if mode == "hold":
            want, hold = int(sys.argv[3]), float(sys.argv[4])
            socks, refused = [], 0
            for _ in range(want):
                try:
                    socks.append(connect(path, blocking=False))
                except BlockingIOError:
                    refused += 1
                    time.sleep(0.01)
                    if refused > 200:
                        break
                except OSError:
                    break
            time.sleep(2.0)
            alive = 0
            for s in socks:
                try:
                    data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                    if data:
                        alive += 1
                except BlockingIOError:
                    alive += 1
                except OSError:
                    pass
            print(json.dumps({"opened": len(socks), "alive": alive}), flush=True)
            time.sleep(hold)
        elif mode == "trickle":
            interval, limit, what = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
            s = connect(path)
            head = b"POST /v1/subjects HTTP/1.1\r\nHost: anonreg\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
            payload = (head if what == "head" else b"") + b"{" + b" " * 199
            if what == "body":
                s.sendall(head)
            s.setblocking(False)
            started, sent, answer, closed = time.time(), 0, b"", False
            while time.time() - started < limit and sent < len(payload):
                try:
                    s.send(payload[sent:sent + 1])
                    sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                except BlockingIOError:
                    pass
                time.sleep(interval)
                try:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    answer += chunk
                except BlockingIOError:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
            if not closed:
                rest, closed = read_answer(s, 0.5)
                answer += rest
            print(json.dumps({"sent": sent, "seconds": round(time.time() - started, 2), "closed": closed,
                              "answer": answer.decode("utf-8", "replace")}), flush=True)
        elif mode == "requests":
            count, method, target = int(sys.argv[3]), sys.argv[4], sys.argv[5]
            s = connect(path)
            statuses, last, closed = {}, "", False
            for _ in range(count):
                body = b"{}" if method == "POST" else b""
                request = (f"{method} {target} HTTP/1.1\r\nHost: anonreg\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
                try:
                    s.sendall(request)
                except OSError:
                    closed = True
                    break
                data, closed = read_answer(s, 30)
                if not data:
                    break
                status = data.split(b" ", 2)[1].decode()
                statuses[status] = statuses.get(status, 0) + 1
                last = data.decode("utf-8", "replace")
                if closed:
                    break
            print(json.dumps({"statuses": statuses, "last": last, "closed": closed}), flush=True)
        elif mode == "raw":
            s = connect(path)
            s.sendall(bytes.fromhex(sys.argv[3]))
            data, closed = read_answer(s, 10)
            print(json.dumps({"answer": data.decode("utf-8", "replace"), "closed": closed}), flush=True)
        """#

    /// The command line that runs `script` in `mode` as `uid`/`gid` (supplementary groups cleared).
    static func command(uid: UInt32, gid: UInt32, _ arguments: [String]) -> [String] {
        ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "/usr/bin/python3", "-c", script] + arguments
    }

    /// Runs a mode to its end and returns its JSON line.
    public static func run(uid: UInt32, gid: UInt32 = 0, _ arguments: [String]) throws -> [String: Any] {
        let command = command(uid: uid, gid: gid, arguments)
        let result = try Binaries.runExecutable(command[0], Array(command.dropFirst()))
        guard let line = result.stdout.split(separator: "\n").last,
            let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        else {
            throw DaemonHarness.HarnessError.requestFailed(
                "attack peer \(arguments.first ?? ""): \(result.status) \(result.stdout) \(result.stderr)")
        }
        return json
    }

    /// Starts a long-running mode (`hold`); its JSON line appears in `output` when it is ready.
    public static func start(uid: UInt32, gid: UInt32 = 0, _ arguments: [String], output: String) throws -> Spawned {
        let command = command(uid: uid, gid: gid, arguments)
        return try Spawned.start(command[0], Array(command.dropFirst()), stdout: output)
    }

    /// Waits for the JSON line a started mode prints.
    public static func result(in output: String, timeout: Double = 60) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: output, encoding: .utf8), let line = text.split(separator: "\n").first,
                let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            {
                return json
            }
            usleep(50_000)
        }
        throw DaemonHarness.HarnessError.requestFailed("attack peer printed nothing in \(timeout) s")
    }
}
