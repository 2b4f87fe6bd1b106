import AnonregClinic
import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryKeyring

#if canImport(Glibc)
    import Glibc
#endif

extension BackupCommand {
    /// `anonreg backup scheduled --to DIR`: what `anonreg-backup.service` runs every day
    /// (docs/OPERATIONS.md §Daily backups). A database backup through the daemon, the oldest beyond
    /// `--keep` removed; and a passphrase-sealed keyring backup whenever the keyring's manifest
    /// changed since the last one (a rotation, retire or destroy), the passphrase from a systemd
    /// credential. Both go into DIR, which must belong to the state directory's owner (the user
    /// the command works as) and be closed to everyone else; copy them to two different places
    /// from there.
    ///
    /// Run by root on a state directory another user owns (the installed unit), it does as root
    /// only what needs root: it reads the root-only passphrase credential and sends the backup
    /// request as the admin uid (the daemon knows the caller by the connection's credentials,
    /// taken at connect). Then it switches for good to the state directory's owner
    /// (§Root and the offline commands) before it reads a byte of the daemon's answer: it writes
    /// the backup, verifies it with the keyring's audit key, prunes, reads the keys directory and
    /// writes the keyring backup as that user.
    struct Scheduled: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take the daily backups into a directory, keeping the newest N (anonreg-backup.service).",
            discussion: """
                Writes DIR/registry-TIME.anrgbak through the daemon (admin) and verifies it; removes \
                the oldest beyond --keep. When the keyring's manifest changed since the last keyring \
                backup (or there is none), also writes DIR/keys-TIME.anrgkbk, sealed with the \
                passphrase in --passphrase-file (in the unit: the systemd credential \
                anonreg-backup-passphrase). DIR must be a directory, mode 0700, of the user the \
                command works as: run by root on a state directory another user owns, it sends the \
                request as root, then works as that owner (as every offline command does).
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The backup directory (mode 0700, owned by the state directory's owner).") var to: String
        @Option(help: "How many database backups (and keyring backups) to keep.") var keep: Int = 14
        @Option(help: "The state directory whose keys/ is backed up.") var stateDir: String = "/var/lib/anonreg"
        @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
        @Option(help: "File holding the keyring backup passphrase.") var passphraseFile: String?
        @Option(help: "Argon2id cost of the keyring backup: interactive, moderate, sensitive.") var kdfStrength: String = "moderate"

        func validate() throws {
            guard keep >= 1 else { throw ValidationError("--keep must be 1 or more") }
            guard PasswordStrength(option: kdfStrength) != nil else {
                throw ValidationError("--kdf-strength: interactive, moderate or sensitive")
            }
        }

        struct State: Codable {
            /// BLAKE2b-256 of keyring.json when the last keyring backup was written (no secret:
            /// the manifest holds none).
            var manifest: String
            var file: String
        }

        func run() throws {
            umask(0o077)
            let state = URL(fileURLWithPath: stateDir).standardizedFileURL.path
            let keys = keysDir ?? state + "/keys"
            // As the caller (root in the unit): the passphrase credential, which only root may
            // read, and the backup request, sent as the admin uid.
            let early = try PassphraseInput.Early(file: passphraseFile)
            // Checked before the daemon is asked for anything: the user the command will work
            // as, and that DIR is that user's.
            let worker = try OfflineAccess.prospectiveOwner(stateDirectory: state, keysDirectory: keys) ?? geteuid()
            try Self.checkDirectory(to, owner: worker)
            let pending = try ClinicClient(options: connection).startDownload("/v1/admin/backup", timeout: Create.timeoutSeconds)
            // From here on as the state directory's owner: the daemon's answer is read, and every
            // file is written, by the service user, never by root.
            try OfflineAccess.workAsOwner(stateDirectory: state, keysDirectory: keys)
            try Self.checkDirectory(to, owner: geteuid())
            let stamp = Self.stamp()
            // 1. The database backup, verified with the keyring's audit key, then retention.
            let database = to + "/registry-\(stamp).anrgbak"
            let report = try BackupCommand.receive(pending, into: database, keysDirectory: keys)
            let removed = try Self.prune(to, prefix: "registry-", suffix: ".anrgbak", keep: keep)
            // 2. The keyring backup, when the manifest changed.
            let manifest: [UInt8]
            do { manifest = Array(try Data(contentsOf: URL(fileURLWithPath: keys + "/keyring.json"))) } catch {
                throw CLIFailure.failed("cannot read \(keys)/keyring.json: \(error)")
            }
            let fingerprint = Hex.encode(try KeyedHash.unkeyed(manifest))
            let statePath = to + "/keyring-backup.state"
            let last = (try? Data(contentsOf: URL(fileURLWithPath: statePath))).flatMap { try? JSONDecoder().decode(State.self, from: $0) }
            var keyringFile: String? = nil
            if last?.manifest != fingerprint || !FileManager.default.fileExists(atPath: to + "/" + (last?.file ?? "-")) {
                let name = "keys-\(stamp).anrgkbk"
                let fd = try NewFile.create(to + "/" + name)
                var done = false
                defer {
                    close(fd)
                    if !done { unlink(to + "/" + name) }
                }
                let passphrase = try early.obtain(purpose: "keyring backup passphrase", confirm: true)
                let made: (bytes: [UInt8], header: KeyringBackup.Header)
                do {
                    made = try KeyringBackup.create(
                        directory: keys, passphrase: passphrase, strength: PasswordStrength(option: kdfStrength)!)
                } catch {
                    throw CLIFailure.failed("keyring backup: \(error)")
                }
                try NewFile.write(fd, made.bytes, path: to + "/" + name)
                guard fsync(fd) == 0 else { throw CLIFailure.failed("cannot fsync \(to)/\(name)") }
                done = true
                let encoded = try JSONEncoder().encode(State(manifest: fingerprint, file: name))
                let temp = statePath + ".tmp"
                FileManager.default.createFile(atPath: temp, contents: encoded, attributes: [.posixPermissions: 0o600])
                guard rename(temp, statePath) == 0 else { throw CLIFailure.failed("cannot write \(statePath)") }
                keyringFile = to + "/" + name
                _ = try Self.prune(to, prefix: "keys-", suffix: ".anrgkbk", keep: keep)
            }
            if connection.json {
                print(
                    BackupCommand.json([
                        "database": database, "subjects": "\(report.subjects)", "removed": "\(removed.count)",
                        "keyringBackup": keyringFile ?? "",
                    ]))
            } else {
                print("wrote \(database) (\(report.subjects) subjects, signature \(report.signature))")
                for name in removed { print("removed \(to)/\(name) (older than the newest \(keep))") }
                print(
                    keyringFile.map { "wrote \($0): the keyring changed since the last keyring backup" }
                        ?? "keyring unchanged since \(last?.file ?? "-"): no keyring backup needed")
            }
        }

        /// The backup directory: a directory (not a link) of the user the command works as (the
        /// state directory's owner, after root switched to it), closed to group and others.
        static func checkDirectory(_ path: String, owner: uid_t) throws {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw CLIFailure.failed(
                    "\(path) is not a directory; create it, mode 0700, as the state directory's owner (on an installed host: systemd-tmpfiles --create anonreg.conf)"
                )
            }
            guard st.st_uid == owner, st.st_mode & 0o077 == 0 else {
                throw CLIFailure.refused(
                    "\(path) must belong to uid \(owner), the user this command works as, and have mode 0700 (it has \(String(st.st_mode & 0o7777, radix: 8)), owner \(st.st_uid)): backups must not be readable by others. On an installed host the tmpfiles entry makes it anonreg's: systemd-tmpfiles --create anonreg.conf"
                )
            }
        }

        /// Removes the oldest files PREFIX*SUFFIX beyond `keep` (names sort by their UTC time).
        static func prune(_ directory: String, prefix: String, suffix: String, keep: Int) throws -> [String] {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) }.sorted()
            let old = Array(names.dropLast(keep))
            for name in old { unlink(directory + "/" + name) }
            return old
        }

        static func stamp() -> String {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
            return formatter.string(from: Date()).replacingOccurrences(of: ":", with: "")
        }
    }
}
