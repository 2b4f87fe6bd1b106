import Foundation
import Metrics
import RegistryKeyring

/// The gauges an admin alerts on (docs/OPERATIONS.md §Metrics, docs/alerts.yml). Each comes from
/// one source, read when `/metrics` is scraped or set when the event happens:
///
/// | gauge | source |
/// |---|---|
/// | `anonreg_sweep_last_success_timestamp_seconds` | a sweep (daily, at start, or `anonreg sweep`) that reviewed every due subject; on a node that did not run the registry's sweep (PostgreSQL), when another node finished it |
/// | `anonreg_backup_last_success_timestamp_seconds` | a backup stream sent to the end; at start, the newest `backup` audit entry |
/// | `anonreg_kek_primary_created_timestamp_seconds` | when the keyring's primary KEK became primary (written by a rotation, or promoted from staged) |
/// | `anonreg_erasure_ledger_entries` | the erasure ledger beside the keyring |
/// | `anonreg_audit_unsigned_tail_entries` | entries after the last signed checkpoint (`AuditChain.Report.unsignedTail`) |
/// | `anonreg_audit_unsigned_tail_limit_entries` | `audit.checkpoint_every` |
/// | `anonreg_start_time_seconds` | when this daemon started (restarts) |
/// | `anonreg_build_info{version,commit}` | 1, labelled with the release and git commit |
extension RegistryApp {
    static let sweepGauge = "anonreg_sweep_last_success_timestamp_seconds"
    static let backupGauge = "anonreg_backup_last_success_timestamp_seconds"

    /// A sweep finished; it counts as a success only when no subject failed review (a subject
    /// that cannot be opened is not being forgotten, which the alert must show).
    func recordSweep(failed: Int) {
        guard failed == 0 else { return }
        Gauge(label: Self.sweepGauge).record(Date().timeIntervalSince1970)
    }

    /// Another node of the registry finished the sweep at `seconds` since 1970 (docs/STORAGE.md
    /// §Single-runner jobs): that node logs and alerts on its own failures; here the gauge says
    /// the registry was swept.
    func recordSweepFinished(at seconds: Double) {
        Gauge(label: Self.sweepGauge).record(seconds)
    }

    /// A backup stream was sent to its end.
    func recordBackupSent() {
        Gauge(label: Self.backupGauge).record(Date().timeIntervalSince1970)
    }

    /// At start: the gauges that must not read 0 after a restart (a backup taken yesterday), and
    /// the build and start time.
    public func initialiseOperationalGauges(version: String, commit: String) async {
        Gauge(label: "anonreg_build_info", dimensions: [("version", version), ("commit", commit)]).record(1)
        Gauge(label: "anonreg_start_time_seconds").record(Date().timeIntervalSince1970)
        if let at = try? await store.lastAuditTime(action: "backup", result: "ok"),
            let date = ISO8601DateFormatter().date(from: at)
        {
            Gauge(label: Self.backupGauge).record(date.timeIntervalSince1970)
        }
    }

    /// Reads the gauges whose source is state, just before `/metrics` is emitted.
    func refreshOperationalGauges() async {
        let keyring = keys.current
        if let primary = keyring.kekEntries.first(where: { $0.version == keyring.primaryKEK.version }) {
            Gauge(label: "anonreg_kek_primary_created_timestamp_seconds").record(primary.primarySince.timeIntervalSince1970)
        }
        if let entries = ErasureLedger.entryCount(directory: keyring.source.directory) {
            Gauge(label: "anonreg_erasure_ledger_entries").record(entries)
        }
        if let tail = try? await store.auditUnsignedTail() {
            Gauge(label: "anonreg_audit_unsigned_tail_entries").record(tail)
        }
        Gauge(label: "anonreg_audit_unsigned_tail_limit_entries").record(config.audit.checkpointEvery)
    }
}
