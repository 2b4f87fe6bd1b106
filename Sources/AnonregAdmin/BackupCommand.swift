import AnonregClinic
import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
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
        subcommands: [Create.self, Verify.self, Restore.self, Scheduled.self])
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
        /// "ok" (format 2, checked with the keyring's audit key), "not checked" (no keyring given),
        /// or "none (format 1 …)".
        var signature: String
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
                ("file", file), ("format", "\(format)"), ("signature", signature), ("created", createdAt), ("subjects", "\(subjects)"),
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
    static func verify(
        _ input: borrowing InputFile, keysDirectory: String?, extractTo: String? = nil, allowUnsigned: Bool = false,
        publicKey: [UInt8]? = nil
    ) throws -> Report {
        try verifyExtracting(input, keysDirectory: keysDirectory, extractTo: extractTo, allowUnsigned: allowUnsigned, publicKey: publicKey)
            .report
    }

    /// `verify`, also returning what was extracted (the restore uses the ledger section).
    /// Checks, in this order: the header (magic, length, format), the payload's length and
    /// checksum, the ledger section's length and checksum (format 2), the payload's SQLite
    /// integrity, schema and application_id, that every fact of the header (subjects, KEK
    /// versions, ledger state, migrations, application_id, the end of the audit log, the creation
    /// time) agrees with the payload, and, given a keys directory, the header's signature with
    /// the keyring's audit key (docs/CRYPTO.md §Database backups). `input` was opened by the
    /// caller (standard input, or a file only root could open before the command switched to the
    /// state directory's owner).
    static func verifyExtracting(
        _ input: borrowing InputFile, keysDirectory: String?, extractTo: String? = nil, allowUnsigned: Bool = false,
        publicKey given: [UInt8]? = nil
    ) throws -> (report: Report, extracted: BackupArchive.Extracted) {
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
        let extracted: BackupArchive.Extracted
        let payload: BackupArchive.PayloadReport
        do {
            extracted = try BackupArchive.extractPayload(fd: input.fd, name: file, to: payloadPath)
            payload = try BackupArchive.inspect(payload: payloadPath)
        } catch {
            throw CLIFailure.failed("\(error)")
        }
        let header = extracted.header
        guard payload.integrity == "ok" else {
            throw CLIFailure.failed("\(file): the payload fails SQLite's integrity check: \(payload.integrity)")
        }
        guard payload.applicationID == BackupArchive.expectedApplicationID else {
            throw CLIFailure.failed("\(file): the payload is not an anonreg database (application_id \(payload.applicationID))")
        }
        let disagreements = BackupArchive.disagreements(header, payload)
        guard disagreements.isEmpty else {
            throw CLIFailure.failed("\(file): the header does not describe the payload (\(disagreements.joined(separator: ", ")) differ)")
        }
        var keks = header.kekVersions.map { Report.KEK(version: $0, keyring: nil) }
        var readable: Bool? = nil
        var signature =
            extracted.opened.signature == nil
            ? "none (format 1, made before backups were signed)" : "not checked (give --state-dir or --keys-dir)"
        if let keysDirectory {
            let manifest: KeyringManifest
            do { manifest = try KeyringManifest.read(directory: keysDirectory) } catch { throw CLIFailure.failed("\(error)") }
            for i in keks.indices {
                keks[i].keyring = manifest.keks.first { $0.version == keks[i].version }?.status.rawValue ?? "missing"
            }
            readable = keks.allSatisfy { $0.keyring != "destroyed" && $0.keyring != "missing" }
            if extracted.opened.signature != nil {
                guard let publicKey = try? Hex.decode(manifest.audit.publicKey),
                    extracted.opened.signatureVerifies(publicKey: publicKey)
                else {
                    throw CLIFailure.failed(
                        "\(file): the header's signature does not verify with the audit key of \(keysDirectory): the backup was altered after it was taken, or it belongs to another registry"
                    )
                }
                signature = "ok"
            } else if !allowUnsigned {
                throw CLIFailure.refused(
                    "\(file) is a format-1 backup, made before backups were signed: nothing shows that it was not altered since. Restore it only if it was kept where nobody could change it, with --allow-unsigned"
                )
            }
        }
        if keysDirectory == nil, let given {
            guard extracted.opened.signatureVerifies(publicKey: given) else {
                throw CLIFailure.failed("\(file): the header's signature does not verify with the daemon's audit key")
            }
            signature = "ok"
        }
        let report = Report(
            file: file, format: header.format, signature: signature, createdAt: header.createdAt, subjects: header.subjects,
            payloadBytes: header.payloadBytes, checksum: "ok", integrity: payload.integrity,
            applicationID: "ok", kekVersions: keks, readable: readable)
        return (report, extracted)
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
            let report = try BackupCommand.create(file, connection: connection)
            if connection.json {
                print(BackupCommand.json(report))
            } else {
                print("wrote \(file) (mode 0600) and verified it\n" + report.table)
            }
        }
    }

    /// Takes a backup through the daemon into `file` (a new file, mode 0600) and verifies it,
    /// signature included (the daemon's audit public key comes from the keys status).
    static func create(_ file: String, connection: ConnectionOptions) throws -> Report {
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
        _ = try client.download("/v1/admin/backup", to: fd, timeout: Create.timeoutSeconds)
        guard fsync(fd) == 0 else { throw CLIFailure.failed("cannot fsync \(file): \(String(cString: strerror(errno)))") }
        let keys = try? client.call("GET", "/v1/admin/keys", as: KeysStatusResponse.self).0
        let report = try BackupCommand.verify(
            try InputFile(file), keysDirectory: nil, publicKey: keys?.auditPublicKey.flatMap { try? Hex.decode($0) })
        done = true
        return report
    }

    /// Receives a backup requested earlier (`ClinicClient.startDownload`, perhaps as another
    /// user) into `file` (a new file, mode 0600) and verifies it, the signature with the audit key
    /// of `keysDirectory`. No FILE is left if anything fails.
    static func receive(_ pending: consuming ClinicClient.PendingDownload, into file: String, keysDirectory: String) throws -> Report {
        let fd = try NewFile.create(file)
        let token = TemporaryFiles.register(file)
        var done = false
        defer {
            close(fd)
            if !done { unlink(file) }
            TemporaryFiles.forget(token)
        }
        _ = try pending.receive(to: fd)
        guard fsync(fd) == 0 else { throw CLIFailure.failed("cannot fsync \(file): \(String(cString: strerror(errno)))") }
        let report = try BackupCommand.verify(try InputFile(file), keysDirectory: keysDirectory)
        guard report.signature == "ok" else { throw CLIFailure.failed("\(file): the daemon's backup is not signed") }
        done = true
        return report
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a backup: magic, checksum, SQLite integrity, application_id; list the KEK versions it needs.")
        @Argument(help: "The backup file; - reads it from standard input.") var file: String
        @Option(help: "A state directory whose keyring is checked for the KEK versions the backup needs.") var stateDir: String?
        @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
        @Option(help: "The audit public key to check the signature with (64 hex digits), when no keyring is at hand.") var publicKey:
            String?
        @Flag(
            help:
                "Restore this backup and --keyring-backup into a scratch directory, open every subject and verify the audit log; then remove it."
        )
        var trialRestore = false
        @Option(help: "With --trial-restore: the keyring backup (`anonreg keys backup`) to restore with it.") var keyringBackup: String?
        @Option(help: "With --trial-restore: file holding the keyring backup's passphrase.") var passphraseFile: String?
        @Option(help: "With --trial-restore: file holding the keyring's own passphrase, if it is sealed.") var keyringPassphraseFile:
            String?
        @Flag(help: "With --trial-restore: accept a format-1 (unsigned) backup.") var allowUnsigned = false
        @Flag(help: "Print JSON instead of a table.") var json = false

        func validate() throws {
            if trialRestore != (keyringBackup != nil) { throw ValidationError("--trial-restore and --keyring-backup go together") }
        }

        func run() throws {
            if trialRestore, let keyringBackup {
                umask(0o077)
                let trial = try BackupCommand.trialRestore(
                    file, keyringBackup: keyringBackup, passphraseFile: passphraseFile,
                    keyringPassphraseFile: keyringPassphraseFile, allowUnsigned: allowUnsigned)
                print(json ? BackupCommand.json(trial) : trial.table)
                if !trial.ok { throw CLIFailure.failed("the trial restore found problems (see above)") }
                return
            }
            let keys = keysDir ?? stateDir.map { $0 + "/keys" }
            let given: [UInt8]?
            do { given = try publicKey.map { try Hex.decode($0) } } catch { throw CLIFailure.usage("--public-key: 64 hex digits") }
            // Opened as the caller (root may read a root-only FILE), then, with a keyring to
            // check, as the state directory's owner (docs/OPERATIONS.md §Root and the offline commands).
            let input = try InputFile(file)
            if let owner = stateDir ?? keysDir.map({ ($0 as NSString).deletingLastPathComponent }) {
                try OfflineAccess.workAsOwner(stateDirectory: owner, keysDirectory: keys)
            }
            let report = try BackupCommand.verify(input, keysDirectory: keys, allowUnsigned: true, publicKey: given)
            print(json ? BackupCommand.json(report) : report.table)
            if report.format >= 2, report.signature != "ok" {
                throw CLIFailure.failed(
                    "the header's signature was not checked, so the backup could have been altered: give --state-dir, --keys-dir or --public-key"
                )
            }
            if report.readable == false {
                let gone = report.kekVersions.filter { $0.keyring == "destroyed" || $0.keyring == "missing" }.map { "\($0.version)" }
                throw CLIFailure.failed(
                    "this keyring cannot read the backup: KEK version(s) \(gone.joined(separator: ", ")) destroyed or missing. "
                        + "A destroyed version cannot come back; restore the keyring backup of that time (anonreg keys restore) if it still exists"
                )
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
        @Option(help: "The configuration whose audit.checkpoint_every applies (default: STATE_DIR/anonreg.toml if present).") var config:
            String?
        @Option(help: "File holding the keyring passphrase, for a sealed keyring.") var passphraseFile: String?
        @Flag(help: "Replace a database that already holds a registry.") var force = false
        @Flag(help: "Accept a format-1 backup (made before backups were signed), whose content nothing authenticates.") var allowUnsigned =
            false
        @Flag(help: "Print JSON instead of a table.") var json = false

        struct Outcome: Codable {
            var file: String
            var database: String
            var createdAt: String
            var subjectsInBackup: Int
            var erasedByLedger: Int
            var subjects: Int
            /// The audit entry that records the restore, and the number it continues after.
            var auditEntry: Int64
            var numberingContinuesAfter: Int64
            /// Erasures the backup's ledger added to the keyring's ledger.
            var ledgerEntriesAdded: Int
        }

        func run() throws {
            umask(0o077)
            let dir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
            try OfflineAccess.requireSQLite(
                config: config, stateDirectory: dir, keysDirectory: keysDir, command: "anonreg backup restore",
                instead:
                    "restore the database with PostgreSQL's tools, then run `anonregd --record-restore` on one node (docs/OPERATIONS.md §PostgreSQL and several nodes, \"Restoring\")"
            )
            let keys = keysDir ?? dir + "/keys"
            // What only root may read is opened first; then, run by root, the restore works as
            // the state directory's owner, so the database it installs stays the daemon's.
            let input = try InputFile(file)
            let passphrase = try PassphraseInput.Early(file: passphraseFile)
            try OfflineAccess.workAsOwner(stateDirectory: dir, keysDirectory: keys)
            let keyring: Keyring
            do {
                keyring = try Keyring.load(from: KeyringSource(directory: keys), passphrase: try passphrase.forKeyring(directory: keys))
            } catch let failure as CLIFailure { throw failure } catch {
                throw CLIFailure.failed("keyring: \(error)")
            }
            let interval = try AuditCommand.checkpointInterval(config: config, stateDir: dir)
            let target = database.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? dir + "/registry.sqlite"
            let isRegistryDatabase = target == dir + "/registry.sqlite"
            let (result, report) = try BackupCommand.restore(
                input, keyring: keyring, keys: keys, target: target, interval: interval,
                force: force, allowUnsigned: allowUnsigned,
                isRegistryDatabase: isRegistryDatabase)
            if !isRegistryDatabase {
                FileHandle.standardError.write(
                    Data(
                        "anonreg: \(target) is not \(dir)/registry.sqlite: the audit anchor was not moved. The copy is for inspection; a daemon started on it with this keys directory takes it over, and \(dir)/registry.sqlite is refused afterwards\n"
                            .utf8))
            }
            if json {
                print(BackupCommand.json(result))
            } else {
                print(
                    """
                    restored \(result.file) (taken \(report.createdAt)) into \(result.database)
                    signature                    \(report.signature)
                    subjects in the backup       \(report.subjects)
                    erased again by the ledger   \(result.erasedByLedger)
                    subjects now                 \(result.subjects)
                    ledger entries added         \(result.ledgerEntriesAdded) (from the backup's ledger)
                    audit entry                  \(result.auditEntry) records the restore; numbering continues after \(result.numberingContinuesAfter)
                    """)
            }
        }
    }

    /// The restore (docs/OPERATIONS.md §Backups): verify (signature included), merge the backup's
    /// ledger into the keyring's, prepare the copy (migrate, erase again, record the restore in
    /// the audit log, check every row), install it atomically, move the audit anchor.
    static func restore(
        _ input: borrowing InputFile, keyring: Keyring, keys: String, target: String, interval: Int, force: Bool, allowUnsigned: Bool,
        isRegistryDatabase: Bool = true
    ) throws -> (Restore.Outcome, Report) {
        guard !DatabaseInUse.check(target) else {
            throw CLIFailure.refused(
                "\(target) is open in a running anonregd (or another process); stop it first (systemctl stop anonregd.socket anonregd.service: the socket unit would start it again), then restore"
            )
        }
        let existing: (subjects: Int, auditEntries: Int, counters: Int)?
        do { existing = try BackupArchive.contents(database: target) } catch { throw CLIFailure.failed("\(error)") }
        if let existing, existing.subjects + existing.auditEntries + existing.counters > 0, !force {
            throw CLIFailure.refused(
                "\(target) already holds a registry (\(existing.subjects) subject(s), \(existing.auditEntries) audit entries); "
                    + "restoring would replace it. Restore into a new state directory, or pass --force")
        }
        let temp =
            (target as NSString).deletingLastPathComponent + "/.restore-" + Hex.encode((try? Sodium.randomBytes(count: 6)) ?? [0])
            + ".sqlite"
        let token = TemporaryFiles.register(temp)
        var installed = false
        defer {
            if !installed { TemporaryFiles.unlinkAll(temp) }
            TemporaryFiles.forget(token)
        }
        // Extracted once, into the state directory: the copy verified is the copy installed.
        // The header's signature is checked with this keyring's audit key.
        let (report, extracted) = try BackupCommand.verifyExtracting(
            input, keysDirectory: keys, extractTo: temp, allowUnsigned: allowUnsigned)
        let missing = report.kekVersions.filter { (try? keyring.kek(version: $0.version)) == nil }.map { "\($0.version)" }
        guard missing.isEmpty else {
            throw CLIFailure.refused(
                "the keyring in \(keys) lacks KEK version(s) \(missing.joined(separator: ", ")) that the backup needs; restore the matching keyring backup first (anonreg keys restore)"
            )
        }
        let ledgerFile = ErasureLedger(keyring: keyring)
        let ledger: ErasureLedger.Contents
        let backupLedger: ErasureLedger.Contents?
        var added = 0
        do {
            // The keyring's ledger must extend what the target database recorded
            // (docs/CRYPTO.md §Erasure ledger): a ledger cut short, replaced or lost would let
            // erased subjects back. The backup's own ledger (its MACs checked with this
            // keyring) is merged into it first: erasures are only ever added, so no order of
            // restores undoes one.
            let recorded = try BackupArchive.recordedLedgerHead(database: target)
            let before = try ledgerFile.verify(extends: recorded)
            backupLedger = try extracted.ledger.map { (bytes) throws(KeyringError) in try ledgerFile.parse(bytes: bytes) }
            ledger = try backupLedger.map { (carried) throws(KeyringError) in try ledgerFile.merge(carried.references) } ?? before
            added = ledger.references.count - before.references.count
        } catch {
            throw CLIFailure.failed("\(error)")
        }
        let outcome: BackupArchive.RestoreOutcome
        do {
            let anchor = try AuditAnchor.read(directory: keys)
            let highest = anchor.map { $0.seq + Int64(max($0.interval, interval)) } ?? 0
            outcome = try BackupArchive.prepareRestore(
                payload: temp, keyring: keyring, ledger: ledger, backupLedger: backupLedger, createdAt: report.createdAt,
                actor: "admin uid \(getuid()) (offline restore)", interval: interval, continuesAfter: highest)
            guard outcome.remaining == report.subjects - outcome.erased else {
                throw CLIFailure.failed("the restored copy does not hold the expected subjects; nothing was replaced")
            }
            guard !DatabaseInUse.check(target) else {
                throw CLIFailure.refused(
                    "\(target) was opened meanwhile; stop anonregd (systemctl stop anonregd.socket anonregd.service) and retry")
            }
            try BackupArchive.install(payload: temp, as: target)
            installed = true
            // The restore's checkpoint is the newest signature of the registry's log now; a
            // copy restored beside the registry's database (--database elsewhere) moves
            // nothing: it is for inspection, and a daemon started on it takes it over
            // (docs/OPERATIONS.md §Backups).
            if isRegistryDatabase {
                try outcome.checkpoint.anchor?.write(directory: keys)
                try SchemaMark(migrations: BackupArchive.migrationNames).write(directory: keys)
            }
        } catch let failure as CLIFailure { throw failure } catch {
            throw CLIFailure.failed("\(error)")
        }
        let result = Restore.Outcome(
            file: input.name, database: target, createdAt: report.createdAt, subjectsInBackup: report.subjects,
            erasedByLedger: outcome.erased, subjects: outcome.remaining, auditEntry: outcome.restoreSeq,
            numberingContinuesAfter: outcome.continuesAfter, ledgerEntriesAdded: added)
        return (result, report)
    }
}
