import AnonregTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOEmbedded
import Prometheus
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import RegistryStore
import Synchronization
import Testing

@testable import RegistryServer

/// A registry in a temporary directory whose requests go through RequestPipeline, the one path
/// the socket server takes, driven in process by HummingbirdTesting's router framework.
/// Uids: 7001 admin, 7002 clinic `local`, 7003 statistician; any other uid is unknown.
final class PipelineRegistry: Sendable {
    static let admin = PeerCredentials(pid: 11, uid: 7001, gid: 7001)
    static let clinic = PeerCredentials(pid: 12, uid: 7002, gid: 7002)
    static let statistician = PeerCredentials(pid: 13, uid: 7003, gid: 7003)
    static let stranger = PeerCredentials(pid: 14, uid: 7999, gid: 7999)

    let directory: TemporaryDirectory
    let store: SQLiteRegistryStore
    let app: RegistryApp

    /// `limits` is TOML appended to the template's `[limits]` table.
    init(limits: [String: Int] = [:], spaceReserveMiB: Int? = nil, criticalLines: CriticalLines? = nil) throws {
        directory = TemporaryDirectory()
        let keys = KeyCustody(try Keyring.create(in: directory.sub("keys")))
        store = try SQLiteRegistryStore(path: directory.sub("registry.sqlite"), keys: keys)
        var text = ConfigTemplate.render(
            stateDirectory: directory.path, socketPath: directory.sub("anonreg.sock"), adminUIDs: [Self.admin.uid],
            localClinicUID: Self.clinic.uid, serviceUser: nil)
        text = text.replacingOccurrences(of: "statistician_uids = []", with: "statistician_uids = [\(Self.statistician.uid)]")
        for (key, value) in limits {
            let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("\(key) = ") })
            text = text.replacingOccurrences(of: String(line), with: "\(key) = \(value)")
        }
        try text.write(toFile: directory.sub("anonreg.toml"), atomically: true, encoding: .utf8)
        let config = try DaemonConfig.load(path: directory.sub("anonreg.toml"))
        let logger =
            criticalLines.map { sink in Logger(label: "pipeline-test", factory: { _ in CriticalLineHandler(sink: sink) }) }
            ?? Logger(label: "pipeline-test", factory: { _ in SwiftLogNoOpLogHandler() })
        let statePath = directory.path
        app = RegistryApp(
            config: config, store: store, keys: keys, clock: FixedDayClock(Day("2026-06-15")!),
            metrics: PrometheusCollectorRegistry(), logger: logger,
            space: spaceReserveMiB.map { SpaceReserve(stateDirectory: statePath, mebibytes: $0, logger: logger) })
    }

    /// Runs `body` with a client whose every request comes from `peer` (nil: no credentials).
    func test<T: Sendable>(as peer: PeerCredentials?, _ body: @Sendable (any TestClientProtocol) async throws -> T) async throws -> T {
        let application = Application(responder: RequestPipeline(app: app) { _ in peer }, logger: app.logger)
        return try await application.test(.router, body)
    }

    func audit() async throws -> [AuditChain.Entry] {
        try await store.auditEntries(after: 0, limit: 10_000).filter { $0.action != "policy" }
    }

    static let enrolment = ByteBuffer(
        string:
            #"{"consent":{"form":"F","givenOn":"2026-01-10","method":"written","scope":["monitoring"]},"category":"dependence","enrolledOn":"2026-01-10"}"#
    )
    static let json: HTTPFields = [.contentType: "application/json"]

    /// Enrols one subject as the clinic; returns its case handle.
    func enrol() async throws -> String {
        try await test(as: Self.clinic) { client in
            let response = try await client.execute(uri: "/v1/subjects", method: .post, headers: Self.json, body: Self.enrolment)
            #expect(response.status == .created)
            let answer = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            return try #require(answer?["case"] as? String)
        }
    }
}

/// The critical log lines of a test registry: what an operator's alerting sees.
final class CriticalLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct CriticalLineHandler: LogHandler {
    let sink: CriticalLines
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.level == .critical else { return }
        sink.append("\(event.message) \(event.metadata ?? [:])")
    }
}

extension TestResponse {
    var code: String? {
        let answer = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
        return (answer?["error"] as? [String: Any])?["code"] as? String
    }
}

struct RequestPipelineTests {
    /// A local user the configuration does not name gets 403 `unknown_peer` on every route,
    /// even the health check, and leaves an audit entry under its uid.
    @Test func aStrangerIsRefusedEverywhereAndAudited() async throws {
        let registry = try PipelineRegistry()
        let handle = try await registry.enrol()
        try await registry.test(as: PipelineRegistry.stranger) { client in
            for (uri, method) in [("/v1/health", HTTPRequest.Method.get), ("/v1/cases/\(handle)", .get), ("/v1/admin/keys", .get)] {
                let response = try await client.execute(uri: uri, method: method)
                #expect(response.status == .forbidden)
                #expect(response.code == "unknown_peer")
            }
        }
        let entries = try await registry.audit()
        #expect(entries.contains { $0.actor == "unknown peer uid 7999" && $0.result == "unknown_peer" })
        #expect(!entries.contains { $0.action == "read-status" })
    }

    /// No peer credentials at all (a connection the kernel could not name) is no role.
    @Test func aConnectionWithoutCredentialsIsAnUnknownPeer() async throws {
        let registry = try PipelineRegistry()
        try await registry.test(as: nil) { client in
            let response = try await client.execute(uri: "/v1/health", method: .get)
            #expect(response.status == .forbidden)
            #expect(response.code == "unknown_peer")
        }
    }

    /// A clinic's status read is audited, with the subject, before it is answered.
    @Test func aClinicReadIsAuditedWithItsSubject() async throws {
        let registry = try PipelineRegistry()
        let handle = try await registry.enrol()
        try await registry.test(as: PipelineRegistry.clinic) { client in
            let response = try await client.execute(uri: "/v1/cases/\(handle)", method: .get)
            #expect(response.status == .ok)
        }
        let entries = try await registry.audit()
        let read = try #require(entries.first { $0.action == "read-status" })
        #expect(read.actor == "clinic local")
        #expect(read.result == "ok")
        #expect(read.subjectCommit != nil)
        #expect(entries.filter { $0.action == "enrol" }.count == 1)
    }

    /// A malicious clinic asking for statistics, an admin route, or another role's data gets
    /// 403, audited as a refusal under its own name.
    @Test func aClinicOutsideItsRoleIsRefusedAndAudited() async throws {
        let registry = try PipelineRegistry()
        try await registry.test(as: PipelineRegistry.clinic) { client in
            for (uri, method) in [("/v1/stats", HTTPRequest.Method.get), ("/v1/admin/keys/rotate", .post), ("/metrics", .get)] {
                let response = try await client.execute(uri: uri, method: method)
                #expect(response.status == .forbidden, "\(method) \(uri)")
                #expect(response.code == "forbidden")
            }
        }
        let entries = try await registry.audit()
        #expect(entries.contains { $0.actor == "clinic local" && $0.action == "read-statistics" && $0.result == "forbidden" })
        #expect(entries.contains { $0.actor == "clinic local" && $0.action == "rotate-kek" && $0.result == "forbidden" })
        #expect(try await registry.app.keys.current.primaryKEK.version == 1)
    }

    /// In storage-full mode a clinic trying an admin write (and an admin trying a clinic write)
    /// still gets the audited 403, not an unaudited 507 that would hide the attempt; the
    /// clinic's own writes are refused 507 as before. The reserve is sized past any disk, so the
    /// mode cannot end by itself during the test.
    @Test func storageFullModeHidesNoRefusalOfTheRole() async throws {
        let registry = try PipelineRegistry(spaceReserveMiB: Int(Int32.max))
        registry.app.space.storageFullObserved()
        #expect(registry.app.space.isStorageFull)
        try await registry.test(as: PipelineRegistry.clinic) { client in
            let rotate = try await client.execute(uri: "/v1/admin/keys/rotate", method: .post)
            #expect(rotate.status == .forbidden && rotate.code == "forbidden", "\(rotate.status) \(String(buffer: rotate.body))")
            let enrol = try await client.execute(
                uri: "/v1/subjects", method: .post, headers: PipelineRegistry.json, body: PipelineRegistry.enrolment)
            #expect(enrol.status.code == 507 && enrol.code == "storage_full", "\(enrol.status)")
        }
        try await registry.test(as: PipelineRegistry.admin) { client in
            let enrol = try await client.execute(
                uri: "/v1/subjects", method: .post, headers: PipelineRegistry.json, body: PipelineRegistry.enrolment)
            #expect(enrol.status == .forbidden && enrol.code == "forbidden", "\(enrol.status)")
            // The admin's own key writes are refused up front: no key file is written.
            for uri in ["/v1/admin/keys/stage", "/v1/admin/keys/rotate"] {
                let refused = try await client.execute(uri: uri, method: .post)
                #expect(refused.status.code == 507 && refused.code == "storage_full", "\(uri): \(refused.status)")
            }
        }
        #expect(registry.app.keys.current.kekEntries.count == 1)
        let entries = try await registry.audit()
        #expect(entries.contains { $0.actor == "clinic local" && $0.action == "rotate-kek" && $0.result == "forbidden" }, "\(entries)")
        #expect(entries.contains { $0.action == "enrol" && $0.result == "forbidden" }, "\(entries)")
        #expect(!entries.contains { $0.result == "refused_storage_full" })
        #expect(try await registry.app.keys.current.primaryKEK.version == 1)
        #expect(try await registry.store.subjectCount() == 0)
    }

    /// A withdrawal whose records fail to open still erases the subject (through the ledger),
    /// so the request succeeds; the integrity failure must still reach the operator's alerting
    /// (critical log, `anonreg_integrity_failures_total`) as a refused request's would. Else a
    /// writer's damage would leave nothing but a note in the audit log once the subject is gone.
    @Test func aWithdrawalWhoseRecordsFailIsStillAlerted() async throws {
        let lines = CriticalLines()
        let registry = try PipelineRegistry(criticalLines: lines)
        let handle = try await registry.enrol()
        let damage = try Binaries.runExecutable(
            "/usr/bin/sqlite3", [registry.directory.sub("registry.sqlite"), "DELETE FROM record WHERE id = (SELECT max(id) FROM record);"])
        #expect(damage.status == 0)
        try await registry.test(as: PipelineRegistry.clinic) { client in
            let response = try await client.execute(uri: "/v1/cases/\(handle)/withdraw", method: .post)
            #expect(response.status.code / 100 == 2, "\(response.status) \(String(buffer: response.body))")
        }
        #expect(try await registry.store.subjectCount() == 0)
        #expect(
            lines.all.contains { $0.contains("integrity failure") && $0.contains("/withdraw") && $0.contains("\"source\": request") },
            "\(lines.all)")
    }

    /// An admin may not act as a clinic: the clinic routes need the clinic role.
    @Test func anAdminCannotEnrolOrReadCases() async throws {
        let registry = try PipelineRegistry()
        let handle = try await registry.enrol()
        try await registry.test(as: PipelineRegistry.admin) { client in
            let read = try await client.execute(uri: "/v1/cases/\(handle)", method: .get)
            #expect(read.status == .forbidden)
            let enrol = try await client.execute(
                uri: "/v1/subjects", method: .post, headers: PipelineRegistry.json, body: PipelineRegistry.enrolment)
            #expect(enrol.status == .forbidden)
        }
        #expect(try await registry.store.kekUsage().values.reduce(0, +) == 1)
    }

    /// Routes outside the table: 404, or 405 with `Allow`; no handler runs and nothing is audited.
    @Test func unknownRoutesAndMethods() async throws {
        let registry = try PipelineRegistry()
        try await registry.test(as: PipelineRegistry.clinic) { client in
            let missing = try await client.execute(uri: "/v1/subjectz", method: .get)
            #expect(missing.status == .notFound)
            #expect(missing.code == "not_found")
            let wrong = try await client.execute(uri: "/v1/health", method: .delete)
            #expect(wrong.status == .methodNotAllowed)
            #expect(wrong.headers[.allow] == "GET")
        }
        #expect(try await registry.audit().isEmpty)
    }

    /// Bad input gets its documented answer and changes nothing: no subject is created.
    @Test func badInputIsRefusedAndChangesNothing() async throws {
        let registry = try PipelineRegistry()
        try await registry.test(as: PipelineRegistry.clinic) { client in
            let truncated = try await client.execute(
                uri: "/v1/subjects", method: .post, headers: PipelineRegistry.json, body: ByteBuffer(string: #"{"consent":"#))
            #expect(truncated.status == .badRequest)
            #expect(truncated.code == "malformed_json")
            let plain = try await client.execute(
                uri: "/v1/subjects", method: .post, headers: [.contentType: "text/plain"], body: PipelineRegistry.enrolment)
            #expect(plain.status == .unsupportedMediaType)
            let badCase = try await client.execute(uri: "/v1/cases/not-a-handle", method: .get)
            #expect(badCase.status == .notFound)
            #expect(badCase.code == "case_not_found")
        }
        #expect(try await registry.store.kekUsage().values.reduce(0, +) == 0)
        #expect(try await registry.audit().allSatisfy { $0.result != "ok" })
    }

    /// A clinic over its read budget gets 429 with `Retry-After`, before the handler runs. The
    /// budget refills one read a minute, so a loaded machine may grant a read or two more than
    /// the burst: the test counts, it does not time.
    @Test func aClinicOverItsBudgetGets429() async throws {
        let registry = try PipelineRegistry(limits: ["reads_per_minute": 1, "read_burst": 2])
        let handle = try await registry.enrol()
        let granted = try await registry.test(as: PipelineRegistry.clinic) { client in
            var granted = 0
            for _ in 0..<20 {
                let response = try await client.execute(uri: "/v1/cases/\(handle)", method: .get)
                guard response.status == .ok else {
                    #expect(response.status == .tooManyRequests)
                    #expect(response.code == "rate_limited")
                    #expect(response.headers[.retryAfter].flatMap(Int.init).map { $0 > 0 } == true)
                    return granted
                }
                granted += 1
            }
            Issue.record("20 reads within a budget of 2 and 1 a minute")
            return granted
        }
        #expect(granted >= 2)
        #expect(try await registry.audit().filter { $0.action == "read-status" && $0.result == "ok" }.count == granted)
    }

    /// The in-process responder (the request fuzzer's) takes the same pipeline: its requests are
    /// audited and held to the clinic budgets like requests on the socket. Before the pipeline
    /// was one, it wrote no audit entry and skipped the budgets.
    @Test func inProcessRequestsTakeTheSamePipeline() async throws {
        let registry = try PipelineRegistry(limits: ["reads_per_minute": 1, "read_burst": 1])
        let handle = try await registry.enrol()
        let responder = InProcessResponder(app: registry.app, channel: EmbeddedChannel())
        let clinic: [Role] = [.clinic(registry.app.config.clinics.first!.id)]
        var statuses: [Int] = []
        while statuses.count < 20, statuses.last != 429 {
            statuses.append(
                await responder.respond(method: .get, target: "/v1/cases/\(handle)", body: nil, contentType: nil, roles: clinic).status)
        }
        #expect(statuses.first == 200)
        #expect(statuses.last == 429, "the in-process path skipped the clinic budget: \(statuses)")
        let strangers = await responder.respond(method: .get, target: "/v1/health", body: nil, roles: [])
        #expect(strangers.status == 403)
        let entries = try await registry.audit()
        #expect(entries.contains { $0.action == "read-status" && $0.result == "ok" && $0.actor == "clinic local" })
        #expect(entries.contains { $0.actor == "unknown peer uid unknown" })
    }
}
