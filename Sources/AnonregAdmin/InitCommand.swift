import ArgumentParser
import Foundation
import RegistryConfig
import RegistryCrypto
import RegistryKeyring
import RegistryStore

/// `anonreg init --state-dir DIR`: a working state directory in one step.
public struct InitCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a state directory: keyring, database and a commented anonreg.toml.",
        discussion: """
            Creates DIR (mode 0750) with DIR/keys (0700, a fresh keyring with KEK version 1), \
            DIR/registry.sqlite, and DIR/anonreg.toml whose socket is DIR/anonreg.sock, with the \
            calling uid as admin and as clinic "local" (statistics, which never go to a clinic, it \
            reads offline: `anonreg stats --state-dir DIR`). Refuses a directory that already \
            holds any of these.

            --oprf-seed-file restores the OPRF key from its offline backup (RFC 9497 \
            DeriveKeyPair), so linkage values stay comparable across a rebuild: the file \
            `anonreg keys export-oprf-seed --output FILE` wrote, mode 0600. --oprf-seed-hex puts \
            the seed on the command line, where every local user can read it; avoid it.
            """)

    @Option(name: .long, help: "The state directory to create.")
    var stateDir: String

    @Option(name: .long, help: "64 hex digits: the OPRF seed (visible to every local user in the process list; use --oprf-seed-file).")
    var oprfSeedHex: String?

    @Option(
        name: .long, help: "The OPRF seed file that `anonreg keys export-oprf-seed --output` wrote (mode 0600; its key info comes with it)."
    )
    var oprfSeedFile: String?

    @Option(name: .long, help: "The OPRF key info that goes with the seed (text).")
    var oprfKeyInfo: String?

    @Option(
        name: .long,
        help:
            "Seal every key file with a passphrase read from this file (0600); the daemon then needs it as the systemd credential anonreg-keyring-passphrase."
    )
    var passphraseFile: String?

    @Option(name: .long, help: "Argon2id cost of the sealing: interactive, moderate (256 MiB, 3 passes), sensitive.")
    var kdfStrength: String = "moderate"

    @Flag(
        name: .long,
        help: "Create only the keyring and the database (for a packaged install whose configuration is /etc/anonreg/anonreg.toml).")
    var keysOnly = false

    public init() {}

    public func validate() throws {
        if oprfSeedHex != nil && oprfSeedFile != nil {
            throw ValidationError("give --oprf-seed-hex or --oprf-seed-file, not both")
        }
        guard PasswordStrength(option: kdfStrength) != nil else {
            throw ValidationError("--kdf-strength: interactive, moderate or sensitive")
        }
        if oprfKeyInfo != nil && oprfSeedHex == nil && oprfSeedFile == nil {
            throw ValidationError("--oprf-key-info needs --oprf-seed-hex or --oprf-seed-file")
        }
    }

    public func run() throws {
        umask(0o077)
        let dir = URL(fileURLWithPath: stateDir).standardizedFileURL.path
        let configPath = dir + "/anonreg.toml"
        let database = dir + "/registry.sqlite"
        // An empty keys directory (made by systemd-tmpfiles) is fine; a keyring or database is not.
        for existing in [configPath, database, dir + "/keys/keyring.json"] where FileManager.default.fileExists(atPath: existing) {
            if existing == configPath && keysOnly { continue }
            throw CLIFailure.refused("\(existing) already exists; anonreg init never overwrites a registry")
        }
        // Input files are read first, as the caller (root may be the only one who can read
        // them); then root works as the owner of a state directory the service user owns
        // (systemd-tmpfiles made it), and the passphrase is checked before anything is created.
        var options = KeyringCreateOptions()
        var early = PassphraseInput.Early.none
        if let passphraseFile {
            do { early = try PassphraseInput.Early(file: passphraseFile) } catch let failure as CLIFailure {
                throw CLIFailure.usage("--passphrase-file: \(failure.description)")
            }
        }
        if let file = oprfSeedFile {
            // The file `keys export-oprf-seed --output` writes: the caller's, 0600, read into
            // secure memory; its key info, if it gives one, is the one that goes with the seed.
            let read: (seed: KeyMaterial, keyInfo: [UInt8]?)
            do { read = try OPRFSeedFile.read(path: file) } catch { throw CLIFailure.usage("--oprf-seed-file: \(error)") }
            options.oprfSeed = read.seed
            if let info = oprfKeyInfo, let fromFile = read.keyInfo, Array(info.utf8) != fromFile {
                throw CLIFailure.usage("--oprf-key-info differs from the key info in \(file); give only the file")
            }
            if let info = read.keyInfo ?? oprfKeyInfo.map({ Array($0.utf8) }) { options.oprfKeyInfo = info }
        } else if let hex = oprfSeedHex {
            do {
                options.oprfSeed = KeyMaterial(try SecretBytes(hex: hex), name: "oprf seed")
            } catch {
                throw CLIFailure.usage("--oprf-seed-hex must be 64 hex digits")
            }
            guard options.oprfSeed?.count == OPRF.seedBytes else { throw CLIFailure.usage("--oprf-seed-hex must be 64 hex digits") }
            if let info = oprfKeyInfo { options.oprfKeyInfo = Array(info.utf8) }
        }
        // Before anything is created: root never makes the service's state directory its own.
        try OfflineAccess.workAsOwner(stateDirectory: dir, keysDirectory: dir + "/keys")
        if !early.isNone {
            do {
                let passphrase = try early.obtain(purpose: "keyring passphrase", confirm: false)
                try Passphrase.checkStrength(passphrase)
                options.passphrase = passphrase
            } catch {
                throw CLIFailure.usage("--passphrase-file: \(error)")
            }
            options.passwordStrength = PasswordStrength(option: kdfStrength)!
        }
        if mkdir(dir, 0o750) == 0 {
            chmod(dir, 0o750)
        } else if errno != EEXIST {
            throw CLIFailure.failed("cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        let keyring: Keyring
        do { keyring = try Keyring.create(in: dir + "/keys", options: options) } catch {
            throw CLIFailure.failed("keyring: \(error)")
        }
        do {
            let store = try SQLiteRegistryStore(path: database, keyring: keyring)
            try store.close()
        } catch {
            throw CLIFailure.failed("database: \(error)")
        }
        if keysOnly {
            print("Created the keyring (\(dir)/keys) and the database (\(database)).")
            return
        }
        let text = ConfigTemplate.render(stateDirectory: dir, uid: geteuid())
        guard FileManager.default.createFile(atPath: configPath, contents: Data(text.utf8), attributes: [.posixPermissions: 0o640]) else {
            throw CLIFailure.failed("cannot write \(configPath)")
        }
        print(
            """
            Created \(dir):
              keys/            keyring (KEK version 1, OPRF public key \(keyring.manifest.oprf.publicKey.prefix(16))…)
              registry.sqlite  empty registry
              anonreg.toml     uid \(geteuid()) is admin and clinic "local"
            Start the daemon with:
              anonregd --config \(configPath)
            Statistics never go to a clinic, so this uid reads them offline, with the daemon stopped:
              anonreg stats --state-dir \(dir)
            """)
    }
}

/// `anonreg config-template`: prints a commented anonreg.toml (used by `make install`).
public struct ConfigTemplateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "config-template", abstract: "Print a commented anonreg.toml for a system install.")
    @Option(help: "The state directory.") var stateDir = "/var/lib/anonreg"
    @Option(help: "The socket path.") var socket = "/run/anonreg/anonreg.sock"
    @Option(name: .customLong("admin-uid"), help: "An admin uid (repeatable).") var adminUIDs: [UInt32] = [0]
    @Option(help: "The service user that owns the state directory and runs anonregd (daemon.user).") var user = "anonreg"
    public init() {}
    public func run() {
        print(
            ConfigTemplate.render(
                stateDirectory: stateDir, socketPath: socket, adminUIDs: adminUIDs, localClinicUID: nil, serviceUser: user),
            terminator: "")
    }
}

/// A CLI failure with its documented exit code (docs/OPERATIONS.md §Exit codes).
public enum CLIFailure: Error, CustomStringConvertible {
    case failed(String)
    case usage(String)
    case refused(String)
    case unreachable(String)

    public var exitCode: Int32 {
        switch self {
        case .failed: 1
        case .usage: 2
        case .refused: 3
        case .unreachable: 4
        }
    }

    public var description: String {
        switch self {
        case .failed(let m), .usage(let m), .refused(let m), .unreachable(let m): m
        }
    }
}
