import AnonregClinic
import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryKeyring
import RegistryStore

/// `anonreg backup create|verify|restore`: database backups (docs/OPERATIONS.md §Backups).
public struct BackupCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Database backups: create (online, through the daemon), verify, restore (offline).",
        discussion: """
            A backup holds ciphertext only; reading it needs the keyring's KEK versions named in its \
            header. Back the keyring up separately with `anonreg keys backup`. Restore applies the \
            erasure ledger, so a subject erased after the backup stays erased.
            """,
        subcommands: [Create.self, Verify.self, Restore.self])
    public init() {}

    /// What `verify` found (also the --json output).
    struct Report: Codable {
        struct KEK: Codable {
            var version: Int
            /// primary, active, retired, destroyed, missing; nil without --state-dir.
            var keyring: String?
        }
        var file: String
        var format: Int
        var createdAt: String
        var subjects: Int
        var payloadBytes: Int64
        var checksum: String
        var integrity: String
        var applicationID: String
        var kekVersions: [KEK]
        /// Whether the keyring (with --state-dir) holds every KEK version the backup needs.
        var readable: Bool?

        var table: String {
            var rows: [(String, String)] = [
                ("file", file), ("format", "\(format)"), ("created", createdAt), ("subjects", "\(subjects)"),
                ("payload", "\(payloadBytes) bytes, checksum \(checksum)"), ("integrity", integrity),
                ("application_id", applicationID),
            ]
            for k in kekVersions { rows.append(("KEK version \(k.version)", k.keyring.map { "needed; keyring: \($0)" } ?? "needed")) }
            let width = rows.map(\.0.count).max() ?? 0
            return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
        }
    }

    /// Checks a backup file: header, payload length and checksum, SQLite integrity_check and
    /// application_id of the payload, and that the header's facts match the payload's. The
    /// payload is extracted to a private temporary directory and removed afterwards.
    ///
    /// With `extractTo`, the payload is extracted there instead and left for the caller (a
    /// restore verifies the very copy it then installs; the caller removes it on failure).
    static func verify(_ input: borrowing InputFile, keysDirectory: String?, extractTo: String? = nil) throws -> Report {
        let file = input.name
        var temp = ""
        var token: Int? = nil
        if extractTo == nil {
            var template = Array((NSTemporaryDirectory() + "/anonreg-verify-XXXXXX").utf8CString)
            guard let dir = mkdtemp(&template) else { throw CLIFailure.failed("cannot create a temporary directory") }
            temp = String(cString: dir)
            token = TemporaryFiles.register(temp + "/payload.sqlite")
        }
        defer {
            if let token {
                TemporaryFiles.unlinkAll(temp + "/payload.sqlite")
                rmdir(temp)
                TemporaryFiles.forget(token)
            }
        }
        let payloadPath = extractTo ?? temp + "/payload.sqlite"
        let header: BackupArchive.Header
        let payload: BackupArchive.PayloadReport
        do {
            header = try BackupArchive.extractPayload(fd: input.fd, name: file, to: payloadPath)
            payload = try BackupArchive.inspect(payload: payloadPath)
        } catch {
            throw CLIFailure.failed("\(error)")
        }
        guard payload.integrity == "ok" else { throw CLIFailure.failed("\(file): the payload fails SQLite's integrity check: \(payload.integrity)") }
        guard payload.applicationID == BackupArchive.expectedApplicationID else {
            throw CLIFailure.failed("\(file): the payload is not an anonreg database (application_id \(payload.applicationID))")
        }
        let ledgerHead = BackupArchive.LedgerHead(entries: payload.erasureLedger.count, head: Hex.encode(payload.erasureLedger.head))
        guard payload.subjects == header.subjects, payload.kekVersions == header.kekVersions,
              header.erasureLedger == nil || header.erasureLedger == ledgerHead else {
            throw CLIFailure.failed("\(file): the header does not describe the payload (subjects or KEK versions differ)")
        }
        var keks = header.kekVersions.map { Report.KEK(version: $0, keyring: nil) }
        var readable: Bool? = nil
        if let keysDirectory {
            let manifest: KeyringManifest
            do { manifest = try KeyringManifest.read(directory: keysDirectory) } catch { throw CLIFailure.failed("\(error)") }
            for i in keks.indices {
                keks[i].keyring = manifest.keks.first { $0.version == keks[i].version }?.status.rawValue ?? "missing"
            }
            readable = keks.allSatisfy { $0.keyring != "destroyed" && $0.keyring != "missing" }
        }
        return Report(
            file: file, format: header.format, createdAt: header.createdAt, subjects: header.subjects,
            payloadBytes: header.payloadBytes, checksum: "ok", integrity: payload.integrity,
            applicationID: "ok", kekVersions: keks, readable: readable)
    }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a backup while the daemon serves (admin); written to FILE, a new file with mode 0600.",
            discussion: """
                The daemon copies the database with SQLite's online backup API into a temporary \
                file in its own state directory (the only place its hardened unit may write), \
                streams it to this command, and removes it. This command writes FILE and verifies it.
                """)
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The backup file to create (it must not exist).") var file: String
        /// How long the CLI waits for the daemon's snapshot (docs/OPERATIONS.md §Backups).
        static let timeoutSeconds = 3600

        func run() throws {
            let fd = try NewFile.create(file)
            let token = TemporaryFiles.register(file)
            var done = false
            defer {
                close(fd)
                if !done { unlink(file) }
                TemporaryFiles.forget(token)
            }
            let client = ClinicClient(options: connection)
            // The daemon copies the whole database before it sends a byte: wait up to an hour.
            _ = try client.download("/v1/admin/backup", to: fd, timeout: Self.timeoutSeconds)
            guard fsync(fd) == 0 else { throw CLIFailure.failed("cannot fsync \(file): \(String(cString: strerror(errno)))") }
            let report = try BackupCommand.verify(try InputFile(file), keysDirectory: nil)
            done = true
            if connection.json {
                print(BackupCommand.json(report))
            } else {
                print("wrote \(file) (mode 0600) and verified it\n" + report.table)
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a backup: magic, checksum, SQLite integrity, application_id; list the KEK versions it needs.")
        @Argument(help: "The backup file; - reads it from standard input.") var file: String
        @Option(help: "A state directory whose keyring is checked for the KEK versions the backup needs.") var stateDir: String?
        @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let keys = keysDir ?? stateDir.map { $0 + "/keys" }
            // Opened as the caller (root may read a root-only FILE), then, with a keyring to
            // check, as the state directory's owner (docs/OPERATIONS.md §Root and the offline commands).
            let input = try InputFile(file)
            if let owner = stateDir ?? keysDir.map({ ($0 as NSString).deletingLastPathComponent }) {
                try OfflineAccess.workAsOwner(stateDirectory: owner, keysDirectory: keys)
            }
            let report = try BackupCommand.verify(input, keysDirectory: keys)
            print(json ? BackupCommand.json(report) : report.table)
            if report.readable == false {
                let gone = report.kekVersions.filter { $0.keyring == "destroyed" || $0.keyring == "missing" }.map { "\($0.version)" }
                throw CLIFailure.failed(
                    "this keyring cannot read the backup: KEK version(s) \(gone.joined(separator: ", ")) destroyed or missing. "
                        + "A destroyed version cannot come back; restore the keyring backup of that time (anonreg keys restore) if it still exists")
            }
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a backup into a stopped state directory, applying the erasure ledger.",
            discussion: """
                Verifies the backup, checks that the keyring holds every KEK version it needs, \
                erases again every subject named in the erasure ledger (KEYS_DIR/erasure-ledger), \
                and only then replaces the database, atomically. Refuses while a daemon has the \
                database open, and refuses a database that holds anything (subjects, audit \
                entries, counters) unless --force.
                """)
        @Argument(help: "The backup file; - reads it from standard input.") var file: String
        @Option(help: "The state directory to restore into (the daemon must be stopped).") var stateDir: String
        @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
        @Option(help: "The database file (default: STATE_DIR/registry.sqlite).") var database: String?
        @Option(help: "File holding the keyring passphrase, for a sealed keyring.") var passphraseFile: String?
        @Flag(help: "Replace a database that already holds a registry.") var force = false
        @Flag(help: "Print JSON instead of a table.") var json = false

        struct Outcome: Codable {
            var file: String
            var database: String
            var createdAt: String
            var subjectsInBackup: Int
            var erasedByLedger: Int
            var subjects: Int
        }

        func run() throws {
            umask(0o077)
            let dir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
            let keys = keysDir ?? dir + "/keys"
            let target = database ?? dir + "/registry.sqlite"
            // What only root may read is opened first; then, run by root, the restore works as
            // the state directory's owner, so the database it installs stays the daemon's.
            let input = try InputFile(file)
            let passphrase = try PassphraseInput.Early(file: passphraseFile)
            try OfflineAccess.workAsOwner(stateDirectory: dir, keysDirectory: keys)
            guard !DatabaseInUse.check(target) else {
                throw CLIFailure.refused("\(target) is open in a running anonregd (or another process); stop it first (systemctl stop anonregd.socket anonregd.service: the socket unit would start it again), then restore")
            }
            let keyring: Keyring
            do {
                keyring = try Keyring.load(from: KeyringSource(directory: keys), passphrase: try passphrase.forKeyring(directory: keys))
            } catch let failure as CLIFailure { throw failure } catch {
                throw CLIFailure.failed("keyring: \(error)")
            }
            let existing: (subjects: Int, auditEntries: Int, counters: Int)?
            do { existing = try BackupArchive.contents(database: target) } catch { throw CLIFailure.failed("\(error)") }
            if let existing, existing.subjects + existing.auditEntries + existing.counters > 0, !force {
                throw CLIFailure.refused(
                    "\(target) already holds a registry (\(existing.subjects) subject(s), \(existing.auditEntries) audit entries); "
                        + "restoring would replace it. Restore into a new state directory, or pass --force")
            }
            let temp = (target as NSString).deletingLastPathComponent + "/.restore-" + Hex.encode((try? Sodium.randomBytes(count: 6)) ?? [0]) + ".sqlite"
            let token = TemporaryFiles.register(temp)
            var installed = false
            defer {
                if !installed { TemporaryFiles.unlinkAll(temp) }
                TemporaryFiles.forget(token)
            }
            // Extracted once, into the state directory: the copy verified is the copy installed.
            let report = try BackupCommand.verify(input, keysDirectory: keys, extractTo: temp)
            let missing = report.kekVersions.filter { (try? keyring.kek(version: $0.version)) == nil }.map { "\($0.version)" }
            guard missing.isEmpty else {
                throw CLIFailure.refused("the keyring in \(keys) lacks KEK version(s) \(missing.joined(separator: ", ")) that the backup needs; restore the matching keyring backup first (anonreg keys restore)")
            }
            // The ledger must extend what the target database recorded (docs/CRYPTO.md §Erasure
            // ledger): a ledger cut short, replaced or lost would let erased subjects back.
            let ledger: ErasureLedger.Contents
            do {
                let recorded = try BackupArchive.recordedLedgerHead(database: target)
                ledger = try ErasureLedger(keyring: keyring).verify(extends: recorded)
            } catch {
                throw CLIFailure.failed("\(error)")
            }
            let erasedCount: Int
            let remaining: Int
            do {
                (erasedCount, remaining) = try BackupArchive.applyErasures(payload: temp, keyring: keyring, ledger: ledger)
                guard remaining == report.subjects - erasedCount else { throw CLIFailure.failed("the restored copy does not hold the expected subjects; nothing was replaced") }
                guard !DatabaseInUse.check(target) else { throw CLIFailure.refused("\(target) was opened meanwhile; stop anonregd (systemctl stop anonregd.socket anonregd.service) and retry") }
                try BackupArchive.install(payload: temp, as: target)
                installed = true
            } catch let failure as CLIFailure { throw failure } catch {
                throw CLIFailure.failed("\(error)")
            }
            let outcome = Outcome(file: input.name, database: target, createdAt: report.createdAt, subjectsInBackup: report.subjects,
                                  erasedByLedger: erasedCount, subjects: remaining)
            if json {
                print(BackupCommand.json(outcome))
            } else {
                print("""
                    restored \(input.name) (taken \(report.createdAt)) into \(target)
                    subjects in the backup       \(report.subjects)
                    erased again by the ledger   \(erasedCount)
                    subjects now                 \(remaining)
                    """)
            }
        }
    }
}
