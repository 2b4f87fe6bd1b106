import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryKeyring
import RegistryStore

/// `anonreg keys backup FILE`: the whole keys directory as one passphrase-sealed file
/// (docs/CRYPTO.md §Keyring backups). Offline: it reads the files, not the daemon.
struct KeyringBackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write the whole keys directory as one passphrase-sealed file (a new file, mode 0600).",
        discussion: """
            Sealed with XChaCha20-Poly1305 under a key derived from the passphrase by Argon2id. \
            The passphrase is asked twice on the terminal, or read from --passphrase-file. It \
            includes the erasure ledger as it is now. Keep the file, and the passphrase, apart \
            from the database backups.
            """)
    @Argument(help: "The backup file to create (it must not exist).") var file: String
    @Option(help: "The state directory (its keys/ is copied).") var stateDir: String
    @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
    @Option(help: "File holding the backup passphrase (0600).") var passphraseFile: String?
    @Option(help: "Argon2id cost: interactive, moderate (256 MiB, 3 passes), sensitive.") var kdfStrength: String = "moderate"
    @Flag(help: "Print JSON instead of text.") var json = false

    func validate() throws {
        guard PasswordStrength(option: kdfStrength) != nil else {
            throw ValidationError("--kdf-strength: interactive, moderate or sensitive")
        }
    }

    func run() throws {
        let keys = keysDir ?? stateDir + "/keys"
        // The file first: nobody types a passphrase only to learn the name was taken. It is
        // created as the caller (root's backup is root's), then, run by root, the keys are read
        // as the state directory's owner (docs/OPERATIONS.md §Root and the offline commands).
        let fd = try NewFile.create(file)
        var done = false
        defer {
            close(fd)
            if !done { unlink(file) }
        }
        let early = try PassphraseInput.Early(file: passphraseFile)
        try OfflineAccess.workAsOwner(stateDirectory: stateDir, keysDirectory: keys)
        let passphrase = try early.obtain(purpose: "backup passphrase", confirm: true)
        do { try Passphrase.checkStrength(passphrase) } catch { throw CLIFailure.usage("\(error)") }
        let made: (bytes: [UInt8], header: KeyringBackup.Header)
        do {
            made = try KeyringBackup.create(directory: keys, passphrase: passphrase, strength: PasswordStrength(option: kdfStrength)!)
        } catch {
            throw CLIFailure.failed("\(error)")
        }
        try NewFile.write(fd, made.bytes, path: file)
        guard fsync(fd) == 0 else { throw CLIFailure.failed("cannot fsync \(file)") }
        done = true
        if json {
            print(
                BackupCommand.json([
                    "file": file, "files": "\(made.header.files.count)", "kdf": "argon2id13",
                    "memLimit": "\(made.header.kdf.memLimit)", "opsLimit": "\(made.header.kdf.opsLimit)",
                ]))
        } else {
            print(
                "wrote \(file) (mode 0600): \(made.header.files.count) files of \(keys), sealed with Argon2id (\(made.header.kdf.memLimit >> 20) MiB, \(made.header.kdf.opsLimit) passes)"
            )
        }
    }
}

/// `anonreg keys restore FILE --state-dir DIR`: the keys directory back from a keyring backup.
struct KeyringRestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore the keys directory from a keyring backup (the daemon must be stopped).",
        discussion: """
            Refuses an existing keyring unless --force; then the old directory is kept beside \
            (KEYS_DIR.replaced-TIME) and the entries of its erasure ledger are carried over. A \
            wrong passphrase writes nothing. The new keyring is staged beside and swapped in with \
            one atomic rename, so an interrupted restore leaves the old keyring or the new one, \
            never a mix.
            """)
    @Argument(help: "The keyring backup file; - reads it from standard input.") var file: String
    @Option(help: "The state directory (its keys/ is written).") var stateDir: String
    @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
    @Option(help: "File holding the backup passphrase (0600).") var passphraseFile: String?
    @Flag(help: "Replace an existing keyring.") var force = false
    @Option(
        help:
            "With --force and a passphrase-sealed keyring in the backup: file holding that keyring's passphrase (0600), to check the erasure ledgers it merges."
    )
    var keyringPassphraseFile: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    func run() throws {
        umask(0o077)
        let dir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        let keys = keysDir ?? dir + "/keys"
        // Read as the caller (root may read a root-only backup), then restored as the state
        // directory's owner, so the keys stay the daemon's.
        let data = try InputFile(file).readAll()
        let early = try PassphraseInput.Early(file: passphraseFile)
        let earlyKeyring = try PassphraseInput.Early(file: keyringPassphraseFile)
        try OfflineAccess.workAsOwner(stateDirectory: dir, keysDirectory: keys)
        guard !DatabaseInUse.check(dir + "/registry.sqlite") else {
            throw CLIFailure.refused(
                "\(dir)/registry.sqlite is open in a running anonregd; stop it first (systemctl stop anonregd.socket anonregd.service), then restore the keyring"
            )
        }
        if FileManager.default.fileExists(atPath: keys + "/keyring.json") && !force {
            throw CLIFailure.refused("\(keys) already holds a keyring; pass --force to replace it (the old one is kept beside)")
        }
        for leftover in KeyringBackup.interruptedRestores(of: keys) {
            FileHandle.standardError.write(
                Data(
                    "anonreg: \(leftover) was left by an interrupted keyring restore; it holds keys (a staged keyring that never took effect, or the one a restore replaced): check it, then remove it\n"
                        .utf8))
        }
        do { _ = try KeyringBackup.parse(data) } catch { throw CLIFailure.failed("\(file == "-" ? "standard input" : file): \(error)") }
        let passphrase = try early.obtain(purpose: "backup passphrase", confirm: false)
        let result: (header: KeyringBackup.Header, replaced: String?)
        let keyringPassphrase = earlyKeyring.isNone ? nil : try earlyKeyring.obtain(purpose: "keyring passphrase", confirm: false)
        do {
            result = try KeyringBackup.restore(data, passphrase: passphrase, into: keys, force: force, keyringPassphrase: keyringPassphrase)
        } catch {
            throw CLIFailure.failed("\(error)")
        }
        if json {
            print(BackupCommand.json(["keys": keys, "files": "\(result.header.files.count)", "replaced": result.replaced ?? ""]))
        } else {
            print("restored \(result.header.files.count) files into \(keys) (backup taken \(result.header.createdAt))")
            if let replaced = result.replaced {
                print("the keyring it replaced is kept at \(replaced); remove it (it holds keys) once the restore is checked")
            }
        }
    }
}
