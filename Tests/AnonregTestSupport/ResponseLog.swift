import Foundation

/// Every answer the test suite receives from anonregd, written as one JSON line each to the file
/// `$ANONREG_RESPONSE_LOG` names (when set; `make test` sets it). scripts/check-responses.py then
/// checks each one against docs/openapi.yaml: the route and method exist, the status is one the
/// operation documents, the body matches that response's schema, and an error's code is one the
/// response's description lists. So a refusal the server can give but the schema does not list
/// fails `make test` (issue 22 §6). The three test clients (curl in DaemonHarness, SocketClient,
/// OneShotSocketClient) record through here.
public enum ResponseLog {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var handle: FileHandle? = nil
    nonisolated(unsafe) private static var opened = false
    /// Bodies longer than this are recorded cut short, and flagged, so the log stays small.
    static let bodyLimit = 256 * 1024

    public static func record(method: String, target: String, status: Int, body: String, client: String) {
        guard let path = ProcessInfo.processInfo.environment["ANONREG_RESPONSE_LOG"], !path.isEmpty else { return }
        let truncated = body.utf8.count > bodyLimit
        let entry: [String: Any] = [
            "method": method, "target": target, "status": status, "client": client, "truncated": truncated,
            "body": truncated ? String(decoding: Array(body.utf8.prefix(bodyLimit)), as: UTF8.self) : body,
        ]
        guard var line = try? JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        lock.lock()
        defer { lock.unlock() }
        if !opened {
            opened = true
            let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if fd >= 0 { handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true) }
        }
        try? handle?.write(contentsOf: line)
    }
}
