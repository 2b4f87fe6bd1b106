import AnonregClinic
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import RegistryCrypto
import RegistryKeyring

extension BackupCommand {
    /// `anonreg backup scheduled --to DIR`: what `anonreg-backup.service` runs every day
    /// (docs/OPERATIONS.md §Backups). A database backup through the daemon, the oldest beyond
    /// `--keep` removed; and a passphrase-sealed keyring backup whenever the keyring's manifest
    /// changed since the last one (a rotation, retire or destroy), the passphrase from a systemd
    /// credential. Both go into DIR, which must belong to the caller and be closed to everyone
    /// else; copy them to two different places from there.
    struct Scheduled: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take the daily backups into a directory, keeping the newest N (anonreg-backup.service).",
            discussion: """
                Writes DIR/registry-TIME.anrgbak through the daemon (admin) and verifies it; removes \
                the oldest beyond --keep. When the keyring's manifest changed since the last keyring \
                backup (or there is none), also writes DIR/keys-TIME.anrgkbk, sealed with the \
                passphrase in --passphrase-file (in the unit: the systemd credential \
                anonreg-backup-passphrase). DIR must be a directory of the caller, mode 0700.
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The backup directory (mode 0700, owned by the caller).") var to: String
        @Option(help: "How many database backups (and keyring backups) to keep.") var keep: Int = 14
        @Option(help: "The state directory whose keys/ is backed up.") var stateDir: String = "/var/lib/anonreg"
        @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
        @Option(help: "File holding the keyring backup passphrase.") var passphraseFile: String?
        @Option(help: "Argon2id cost of the keyring backup: interactive, moderate, sensitive.") var kdfStrength: String = "moderate"

        func validate() throws {
            guard keep >= 1 else { throw ValidationError("--keep must be 1 or more") }
            guard PasswordStrength(rawValue: kdfStrength) != nil else { throw ValidationError("--kdf-strength: interactive, moderate or sensitive") }
        }

        struct State: Codable {
            /// BLAKE2b-256 of keyring.json when the last keyring backup was written (no secret:
            /// the manifest holds none).
            var manifest: String
            var file: String
        }

        func run() throws {
            umask(0o077)
            try Self.checkDirectory(to)
            let stamp = Self.stamp()
            // 1. The database backup, then retention.
            let database = to + "/registry-\(stamp).anrgbak"
            let report = try BackupCommand.create(database, connection: connection)
            let removed = try Self.prune(to, prefix: "registry-", suffix: ".anrgbak", keep: keep)
            // 2. The keyring backup, when the manifest changed.
            let keys = keysDir ?? stateDir + "/keys"
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
                let passphrase = try PassphraseInput.obtain(file: passphraseFile, purpose: "keyring backup passphrase", confirm: true)
                let made: (bytes: [UInt8], header: KeyringBackup.Header)
                do { made = try KeyringBackup.create(directory: keys, passphrase: passphrase, strength: PasswordStrength(rawValue: kdfStrength)!) } catch {
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
                print(BackupCommand.json(["database": database, "subjects": "\(report.subjects)", "removed": "\(removed.count)",
                                          "keyringBackup": keyringFile ?? ""]))
            } else {
                print("wrote \(database) (\(report.subjects) subjects, signature \(report.signature))")
                for name in removed { print("removed \(to)/\(name) (older than the newest \(keep))") }
                print(keyringFile.map { "wrote \($0): the keyring changed since the last keyring backup" }
                    ?? "keyring unchanged since \(last?.file ?? "-"): no keyring backup needed")
            }
        }

        /// The backup directory: a directory (not a link) owned by us, closed to group and others.
        static func checkDirectory(_ path: String) throws {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw CLIFailure.failed("\(path) is not a directory; create it with mode 0700 (install -d -m 0700 \(path))")
            }
            guard st.st_uid == geteuid(), st.st_mode & 0o077 == 0 else {
                throw CLIFailure.refused("\(path) must belong to uid \(geteuid()) and have mode 0700 (it has \(String(st.st_mode & 0o7777, radix: 8)), owner \(st.st_uid)): backups must not be readable by others")
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
