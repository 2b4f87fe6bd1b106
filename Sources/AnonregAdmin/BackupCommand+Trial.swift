import ArgumentParser
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryStore

#if canImport(Glibc)
    import Glibc
#endif

/// `anonreg backup verify FILE --trial-restore --keyring-backup KFILE`: the monthly drill
/// (docs/OPERATIONS.md §Backups). Both backups are restored into a scratch directory exactly as
/// after losing the host: the keyring backup first, then the database backup. Every subject's
/// sealed state is opened and the audit log verified; the report says what a real restore would
/// give. The scratch directory is removed afterwards, on success, failure or Ctrl-C.
extension BackupCommand {
    struct TrialReport: Codable {
        var file: String
        var keyringBackup: String
        var createdAt: String
        var signature: String
        var subjectsInBackup: Int
        var erasedByLedger: Int
        var subjects: Int
        var opened: Int
        var failedToOpen: Int
        var kekVersions: [Int]
        var auditLog: String
        var ok: Bool

        var table: String {
            let rows: [(String, String)] = [
                ("database backup", file), ("keyring backup", keyringBackup), ("created", createdAt), ("signature", signature),
                ("subjects in the backup", "\(subjectsInBackup)"), ("erased again by the ledger", "\(erasedByLedger)"),
                ("subjects after restore", "\(subjects)"), ("opened", "\(opened) (every record and its chain)"),
                ("failed to open", "\(failedToOpen)"), ("KEK versions needed", kekVersions.map(String.init).joined(separator: ", ")),
                ("audit log", auditLog), ("result", ok ? "a real restore would succeed" : "A REAL RESTORE WOULD FAIL"),
            ]
            let width = rows.map(\.0.count).max() ?? 0
            return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
        }
    }

    static func trialRestore(
        _ file: String, keyringBackup: String, passphraseFile: String?, keyringPassphraseFile: String?,
        allowUnsigned: Bool
    ) throws -> TrialReport {
        var template = Array((NSTemporaryDirectory() + "/anonreg-trial-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CLIFailure.failed("cannot create a scratch directory") }
        let scratch = String(cString: made)
        let token = TemporaryFiles.registerDirectory(scratch)
        defer {
            TemporaryFiles.removeTree(scratch)
            TemporaryFiles.forget(token)
        }
        let keys = scratch + "/keys"
        // 1. The keyring backup, as `anonreg keys restore` would.
        let sealed: [UInt8]
        do { sealed = Array(try Data(contentsOf: URL(fileURLWithPath: keyringBackup))) } catch {
            throw CLIFailure.failed("cannot read \(keyringBackup): \(error)")
        }
        let passphrase = try PassphraseInput.obtain(file: passphraseFile, purpose: "keyring backup passphrase", confirm: false)
        do { _ = try KeyringBackup.restore(sealed, passphrase: passphrase, into: keys, force: false) } catch {
            throw CLIFailure.failed("the keyring backup does not restore: \(error)")
        }
        let keyring: Keyring
        do {
            let keyringPassphrase = try PassphraseInput.forKeyring(directory: keys, file: keyringPassphraseFile)
            keyring = try Keyring.load(from: KeyringSource(directory: keys), passphrase: keyringPassphrase)
        } catch let failure as CLIFailure { throw failure } catch {
            throw CLIFailure.failed("the restored keyring does not load: \(error)")
        }
        // 2. The database backup, as `anonreg backup restore` would.
        let target = scratch + "/registry.sqlite"
        let (outcome, report) = try restore(
            try InputFile(file), keyring: keyring, keys: keys, target: target, interval: 1000, force: false,
            allowUnsigned: allowUnsigned)
        // 3. Every subject's sealed state, and the audit log.
        let store: SQLiteRegistryStore
        do { store = try SQLiteRegistryStore(path: target, keyring: keyring) } catch { throw CLIFailure.failed("\(error)") }
        defer { try? store.close() }
        let opened: (opened: Int, failed: Int)
        let audit: AuditChain.Report
        do {
            _ = try store.checkErasureLedger()
            opened = try blockingWait { try await store.openEverySubject() }
            audit = try blockingWait { try await store.verifyAudit() }
        } catch {
            throw CLIFailure.failed("\(error)")
        }
        let auditText =
            audit.ok
            ? "ok: \(audit.entries) entries, \(audit.checkpoints) signed checkpoints"
            : "TAMPERED at entry \(audit.badSeq.map(String.init) ?? "?"): \(audit.problem ?? "")"
        return TrialReport(
            file: file, keyringBackup: keyringBackup, createdAt: report.createdAt, signature: report.signature,
            subjectsInBackup: report.subjects, erasedByLedger: outcome.erasedByLedger, subjects: outcome.subjects,
            opened: opened.opened, failedToOpen: opened.failed, kekVersions: report.kekVersions.map(\.version), auditLog: auditText,
            ok: opened.failed == 0 && audit.ok && opened.opened == outcome.subjects)
    }

    /// Runs async store work from the synchronous command.
    static func blockingWait<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let semaphore = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            semaphore.signal()
        }
        semaphore.wait()
        return try box.result!.get()
    }

    final class ResultBox<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }
}
