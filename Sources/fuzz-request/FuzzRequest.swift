import Foundation
import FuzzDriver
import HTTPTypes
import Logging
import NIOEmbedded
import Prometheus
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import RegistryServer
import RegistryStore

// libFuzzer target 1 (issue 8): request decoding, validation and routing, through the daemon's
// real request pipeline: router, handlers, error mapping and audit (`InProcessResponder`), over a registry created in a
// temporary directory. Built for fuzzing by scripts/fuzz.sh (`-sanitize=fuzzer,address
// -D ANONREG_LIBFUZZER`); a normal build makes a replayer that runs the files
// named on its command line through the same entry point (docs/ROBUSTNESS.md).
#if canImport(Glibc)
    import Glibc
#endif

/// The registry the fuzzer talks to, made once per process.
final class FuzzRegistry: @unchecked Sendable {
    static let shared = FuzzRegistry()
    let responder: InProcessResponder
    let clinic: [Role]
    let caseHandle: String

    init() {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        var template = Array("\(base)/anonreg-fuzz-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else { fatalError("mkdtemp failed") }
        let dir = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        do {
            let keyring = try Keyring.create(in: dir + "/keys")
            let keys = KeyCustody(keyring)
            let store = try SQLiteRegistryStore(path: dir + "/registry.sqlite", keys: keys)
            let configPath = dir + "/anonreg.toml"
            // The clinic budgets at their ceiling: the fuzzer sends far more than a clinic may,
            // and inputs answered 429 before their body is read would test nothing else.
            var text = ConfigTemplate.render(stateDirectory: dir, uid: geteuid())
            for key in ["writes_per_minute = 1200", "write_burst = 300", "reads_per_minute = 3000", "read_burst = 600"] {
                let name = key.split(separator: " ").first!
                guard text.contains(key) else { fatalError("the config template no longer says \(key)") }
                text = text.replacingOccurrences(of: key, with: "\(name) = 10000000")
            }
            try text.write(toFile: configPath, atomically: true, encoding: .utf8)
            let config = try DaemonConfig.load(path: configPath)
            let logger = Logger(label: "fuzz-request", factory: { _ in SwiftLogNoOpLogHandler() })
            let app = RegistryApp(
                config: config, store: store, keys: keys, clock: FixedDayClock(Day("2026-06-15")!),
                metrics: PrometheusCollectorRegistry(), logger: logger)
            let responder = InProcessResponder(app: app, channel: EmbeddedChannel())
            self.responder = responder
            clinic = [.clinic(config.clinics.first!.id)]
            let enrol = Self.block {
                await responder.respond(
                    method: .post, target: "/v1/subjects",
                    body: Array(
                        #"{"consent":{"form":"F","givenOn":"2026-01-10","method":"written","scope":["monitoring"]},"category":"dependence","enrolledOn":"2026-01-10"}"#
                            .utf8),
                    roles: [.clinic(config.clinics.first!.id)])
            }
            let answer = try JSONSerialization.jsonObject(with: Data(enrol.body)) as? [String: Any]
            guard enrol.status == 201, let handle = answer?["case"] as? String else {
                fatalError("setup enrolment failed: \(enrol.status)")
            }
            caseHandle = handle
        } catch {
            fatalError("fuzz registry setup failed: \(error)")
        }
    }

    /// Runs async work to completion from libFuzzer's synchronous callback.
    static func block<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            box.value = await work()
            done.signal()
        }
        done.wait()
        return box.value!
    }
}

final class ResultBox<T>: @unchecked Sendable { var value: T? }

let methods: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .head, .options]

/// Input: byte 0 chooses the roles (bits 0–1) and whether byte 1 picks a route-table entry or the
/// next line is a raw request target (bit 2); byte 1 picks the route or method; the rest is the body.
/// Properties checked: no crash, every answer is a known status, and every error body is
/// `{"error":{"code","message"}}` (invariant 7).
func fuzzOne(_ data: [UInt8]) {
    guard data.count >= 2 else { return }
    let registry = FuzzRegistry.shared
    let clinic = registry.clinic
    let roles: [Role] =
        switch data[0] & 3 {
        case 0: clinic
        case 1: [.admin(uid: 0)]
        case 2: [.statistician(uid: 7)]
        default: clinic + [.admin(uid: 0)]
        }
    var rest = Array(data[2...])
    let method: HTTPRequest.Method
    let target: String
    if data[0] & 4 == 0 {
        let spec = RouteTable.routes[Int(data[1]) % RouteTable.routes.count]
        method = spec.method
        target = spec.path.replacingOccurrences(of: "{case}", with: registry.caseHandle)
    } else {
        method = methods[Int(data[1]) % methods.count]
        let line = rest.firstIndex(of: 10) ?? rest.count
        // Only what can reach the router over the socket: the HTTP parser answers 400 to a
        // request target with a control character, a space or a non-ASCII byte (RFC 9112 §3.2),
        // before any of our code runs.
        guard rest[..<line].allSatisfy({ (0x21...0x7E).contains($0) }) else { return }
        target = "/" + String(decoding: rest[..<line], as: UTF8.self)
        rest = Array(rest[min(line + 1, rest.count)...])
    }
    // Keep the registry from filling /dev/shm: writes that would succeed are still decoded and
    // validated, but sweeps and key changes (slow, state-changing) are skipped.
    if target.hasPrefix("/v1/admin/keys/") || target.hasPrefix("/v1/admin/sweep") { return }
    let body = data[0] & 8 == 0 ? rest : nil
    let contentType: String? = data[0] & 16 == 0 ? "application/json" : String(decoding: rest.prefix(8), as: UTF8.self)
    let answer = FuzzRegistry.block {
        await registry.responder.respond(method: method, target: target, body: body, contentType: contentType, roles: roles)
    }
    guard [200, 201, 400, 403, 404, 405, 413, 415, 422, 429, 507].contains(answer.status) else {
        fatalError("unexpected status \(answer.status) for \(method) \(target): \(String(decoding: answer.body, as: UTF8.self))")
    }
    if answer.status >= 400 {
        guard let json = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any],
            let error = json["error"] as? [String: Any], error["code"] is String, error["message"] is String
        else {
            fatalError(
                "malformed error body (status \(answer.status)) for \(method) \(String(reflecting: target)): \(String(reflecting: String(decoding: answer.body, as: UTF8.self)))"
            )
        }
    }
    // The query parsers on their own as well (Day, Month).
    let text = String(decoding: rest.prefix(32), as: UTF8.self)
    if let day = Day(text) { precondition(Day(day.description) == day, "Day round trip: \(text)") }
    if let month = Month(text) { precondition(Month(month.description) == month, "Month round trip: \(text)") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestEntry(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzOne(FuzzDriver.bytes(start, count))
    return 0
}

@main
enum FuzzRequestMain {
    static func main() { FuzzDriver.main(entry: fuzzRequestEntry, replay: fuzzOne) }
}
