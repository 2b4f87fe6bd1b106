import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryKeyring
import RegistryStore

/// `anonreg keys passphrase --state-dir DIR`: seal an unsealed keyring with a passphrase, or
/// change the passphrase of a sealed one (docs/OPERATIONS.md §Passphrase sealing). Offline, on a
/// stopped daemon; atomic (Keyring.changingPassphrase).
struct KeyringPassphraseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "passphrase",
        abstract: "Seal the keyring with a passphrase, or change its passphrase (the daemon must be stopped).",
        discussion: """
            Every key file is sealed again under a key derived from the new passphrase by \
            Argon2id, in a staging directory; the staged keyring is checked with the new \
            passphrase, then swapped in with one atomic rename, and the old key files are \
            overwritten and removed. Interrupted at any point (even by SIGKILL), the keyring is \
            entirely old or entirely new; run the command again to finish and to destroy what \
            the interrupted run left beside it. The daemon reads the passphrase from the systemd \
            credential anonreg-keyring-passphrase: update it before the next start.
            """)
    @Option(help: "The state directory (its keys/ is resealed).") var stateDir: String
    @Option(help: "The keys directory (default: STATE_DIR/keys).") var keysDir: String?
    @Option(help: "File holding the current passphrase of a sealed keyring (0600).") var passphraseFile: String?
    @Option(help: "File holding the new passphrase (0600); without it, it is asked twice on the terminal.") var newPassphraseFile: String?
    @Option(help: "Argon2id cost: interactive, moderate (256 MiB, 3 passes), sensitive.") var kdfStrength: String = "moderate"
    @Flag(help: "Print JSON instead of text.") var json = false

    func validate() throws {
        guard PasswordStrength(option: kdfStrength) != nil else {
            throw ValidationError("--kdf-strength: interactive, moderate or sensitive")
        }
    }

    func run() throws {
        umask(0o077)
        let dir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        let keys = keysDir ?? dir + "/keys"
        let current = try PassphraseInput.Early(file: passphraseFile)
        let new = try PassphraseInput.Early(file: newPassphraseFile)
        try OfflineAccess.workAsOwner(stateDirectory: dir, keysDirectory: keys)
        guard !DatabaseInUse.check(dir + "/registry.sqlite") else {
            throw CLIFailure.refused(
                "\(dir)/registry.sqlite is open in a running anonregd; stop it first (systemctl stop anonregd.socket anonregd.service), change the passphrase, update the credential, then start it"
            )
        }
        let keyring: Keyring
        do {
            keyring = try Keyring.load(from: KeyringSource(directory: keys), passphrase: try current.forKeyring(directory: keys))
        } catch let failure as CLIFailure { throw failure } catch {
            throw CLIFailure.failed("keyring: \(error)")
        }
        let passphrase = try new.obtain(purpose: "new keyring passphrase", confirm: true)
        // docs/CRYPTO.md §Passphrases: a weak new passphrase is refused before anything is written.
        do { try Passphrase.checkStrength(passphrase) } catch { throw CLIFailure.usage("\(error)") }
        let change: Keyring.PassphraseChange
        do { (_, change) = try keyring.changingPassphrase(to: passphrase, strength: PasswordStrength(option: kdfStrength)!) } catch {
            throw CLIFailure.failed("keyring: \(error); the keyring in \(keys) is as it was")
        }
        if json {
            print(
                BackupCommand.json([
                    "keys": keys, "wasSealed": "\(change.wasSealed)", "keyFiles": "\(change.keyFiles)",
                    "otherFiles": "\(change.otherFiles)", "leftoversRemoved": "\(change.leftoversRemoved.count)",
                ]))
            return
        }
        for leftover in change.leftoversRemoved { print("destroyed \(leftover), left by an interrupted earlier run") }
        print(
            """
            \(change.wasSealed ? "changed the passphrase of" : "sealed") \(keys): \(change.keyFiles) key files sealed under the new \
            passphrase (Argon2id, \(kdfStrength)), \(change.otherFiles) other file(s) carried over, the old key files overwritten and removed.
            anonregd reads the passphrase from the systemd credential anonreg-keyring-passphrase: update it before the next start
            (docs/OPERATIONS.md §Keys from systemd credentials). Keyring backups taken before keep their own passphrase.
            """)
    }
}
