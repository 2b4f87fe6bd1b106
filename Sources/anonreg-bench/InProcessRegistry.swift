import Foundation
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import RegistryStore

/// The registry opened in this process, as anonregd opens it (same keyring, same store with
/// `synchronous=FULL` and group commit, same rules from anonreg.toml), with no socket, HTTP or
/// JSON in between: the in-process limits are measured on it.
final class InProcessRegistry: Sendable {
    let store: SQLiteRegistryStore
    /// The keys, held here and lent to the store, as anonregd does.
    let keys: KeyCustody
    let monitoring: MonitoringService
    let clinic = ClinicID("local")!

    init(stateDir: String) throws {
        let config = try DaemonConfig.load(path: stateDir + "/anonreg.toml")
        keys = KeyCustody(try Keyring.load(from: KeyringSource(directory: config.keysDirectory)))
        store = try SQLiteRegistryStore(path: config.databasePath, keys: keys, auditCheckpointEvery: config.audit.checkpointEvery)
        monitoring = MonitoringService(storage: store, rules: config.rules, clock: SystemDayClock())
    }

    static let decoder = JSONDecoder()

    func enrol(_ body: String) async throws -> String {
        let request = try Self.decoder.decode(EnrolRequest.self, from: Data(body.utf8))
        return try await monitoring.enrol(clinic: clinic, request).case
    }

    func checkup(_ handle: String, _ body: String) async throws {
        let request = try Self.decoder.decode(CheckupRequest.self, from: Data(body.utf8))
        _ = try await monitoring.addCheckup(clinic: clinic, case: CaseHandle(handle)!, request)
    }

    func status(_ handle: String) async throws {
        _ = try await monitoring.status(clinic: clinic, case: CaseHandle(handle)!)
    }

    func due(before: Day) async throws -> Int {
        try await monitoring.due(clinic: clinic, before: before).cases.count
    }

    /// What the server does after a read: one audit entry, a durable write (invariant 6).
    func statusAudited(_ handle: String) async throws {
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic local", action: "read-status"))
        try await AuditRecorder.$current.withValue(recorder) {
            _ = try await monitoring.status(clinic: clinic, case: CaseHandle(handle)!)
        }
        if !recorder.appendedWithEffect, let event = recorder.event(result: "ok") { try await store.appendAudit(event) }
    }

    /// A check-up as the daemon records it: its audit entry is appended in the same transaction
    /// (docs/CRYPTO.md §Audit, "effect and entry commit together").
    func checkupAudited(_ handle: String, _ body: String) async throws {
        let recorder = AuditRecorder(AuditRecorder.Action(actor: "clinic local", action: "add-checkup"))
        try await AuditRecorder.$current.withValue(recorder) { try await checkup(handle, body) }
        if !recorder.appendedWithEffect, let event = recorder.event(result: "ok") { try await store.appendAudit(event) }
    }

    func auditAppend() async throws {
        try await store.appendAudit(AuditEvent(actor: "clinic local", action: "read-status", result: "ok", subjectReference: nil))
    }

    func close() { try? store.close() }
}
