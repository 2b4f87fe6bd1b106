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
            calling uid as admin and as clinic "local". Refuses a directory that already holds \
            any of these.

            --oprf-seed-hex and --oprf-key-info restore the OPRF key from its offline backup \
            (RFC 9497 DeriveKeyPair), so linkage values stay comparable across a rebuild.
            """)

    @Option(name: .long, help: "The state directory to create.")
    var stateDir: String

    @Option(name: .long, help: "64 hex digits: the OPRF seed from an offline backup (visible in the process list; prefer --oprf-seed-file).")
    var oprfSeedHex: String?

    @Option(name: .long, help: "A file holding the 64 hex digits of the OPRF seed.")
    var oprfSeedFile: String?

    @Option(name: .long, help: "The OPRF key info that goes with the seed (text).")
    var oprfKeyInfo: String?

    @Option(name: .long, help: "Seal every key file with a passphrase read from this file (0600); the daemon then needs it as the systemd credential anonreg-keyring-passphrase.")
    var passphraseFile: String?

    @Option(name: .long, help: "Argon2id cost of the sealing: interactive, moderate (256 MiB, 3 passes), sensitive.")
    var kdfStrength: String = "moderate"

    @Flag(name: .long, help: "Create only the keyring and the database (for a packaged install whose configuration is /etc/anonreg/anonreg.toml).")
    var keysOnly = false

    public init() {}

    public func validate() throws {
        if oprfSeedHex != nil && oprfSeedFile != nil {
            throw ValidationError("give --oprf-seed-hex or --oprf-seed-file, not both")
        }
        guard PasswordStrength(rawValue: kdfStrength) != nil else {
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
        var options = KeyringCreateOptions()
        var seedHex = oprfSeedHex
        if let file = oprfSeedFile {
            guard let data = FileManager.default.contents(atPath: file) else { throw CLIFailure.usage("cannot read \(file)") }
            seedHex = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // Root filling a state directory the service user owns (systemd-tmpfiles made it)
        // creates the keyring as that user, after reading its input files.
        var early = PassphraseInput.Early.none
        if let passphraseFile {
            do { early = try PassphraseInput.Early(file: passphraseFile) } catch let failure as CLIFailure {
                throw CLIFailure.usage(failure.description)
            }
        }
        // Before anything is created: root never makes the service's state directory its own.
        try OfflineAccess.workAsOwner(stateDirectory: dir, keysDirectory: dir + "/keys")
        if mkdir(dir, 0o750) == 0 {
            chmod(dir, 0o750)
        } else if errno != EEXIST {
            throw CLIFailure.failed("cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        if let hex = seedHex {
            do {
                options.oprfSeed = KeyMaterial(try SecretBytes(hex: hex), name: "oprf seed")
            } catch {
                throw CLIFailure.usage("--oprf-seed-hex must be 64 hex digits")
            }
            guard options.oprfSeed?.count == OPRF.seedBytes else { throw CLIFailure.usage("--oprf-seed-hex must be 64 hex digits") }
            if let info = oprfKeyInfo { options.oprfKeyInfo = Array(info.utf8) }
        }
        if !early.isNone {
            options.passphrase = try early.obtain(purpose: "keyring passphrase", confirm: false)
            options.passwordStrength = PasswordStrength(rawValue: kdfStrength)!
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
        print("""
            Created \(dir):
              keys/            keyring (KEK version 1, OPRF public key \(keyring.manifest.oprf.publicKey.prefix(16))…)
              registry.sqlite  empty registry
              anonreg.toml     uid \(geteuid()) is admin and clinic "local"
            Start the daemon with:
              anonregd --config \(configPath)
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
        print(ConfigTemplate.render(stateDirectory: stateDir, socketPath: socket, adminUIDs: adminUIDs, localClinicUID: nil, serviceUser: user),
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
