import Foundation
import RegistryConfig
import RegistryCrypto
import RegistryKeyring

/// Root and the offline commands (docs/OPERATIONS.md §Root and the offline commands). Run by
/// root on a state directory that the service user owns, an offline command first opens what
/// only root may read (the backup FILE, a passphrase file) and creates its output file, then
/// works as the state directory's owner for the rest: every file it writes stays the daemon's,
/// and no message ever suggests giving the daemon's files to root.
enum OfflineAccess {
    /// Switches to the owner of `stateDirectory` when root runs the command (one line on stderr
    /// says so). Refuses a root-owned state directory when anonreg.toml names another service user.
    static func workAsOwner(stateDirectory: String, keysDirectory: String? = nil) throws {
        let directory = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
        let service = StateOwner.serviceUser(forStateDirectory: directory, keysDirectory: keysDirectory)
        do {
            if let line = try StateOwner.workAsOwner(of: directory, serviceUser: service) {
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        } catch {
            if case .dropFailed = error { throw CLIFailure.failed("\(error)") }
            throw CLIFailure.refused("\(error)")
        }
    }

    /// The uid `workAsOwner` will switch to (nil: none, the command stays the caller), with the
    /// same refusals, switching nothing yet.
    static func prospectiveOwner(stateDirectory: String, keysDirectory: String? = nil) throws -> uid_t? {
        let directory = URL(fileURLWithPath: stateDirectory).standardizedFileURL.path
        let service = StateOwner.serviceUser(forStateDirectory: directory, keysDirectory: keysDirectory)
        do { return try StateOwner.prospectiveOwner(of: directory, serviceUser: service)?.uid } catch {
            throw CLIFailure.refused("\(error)")
        }
    }
}

extension OfflineAccess {
    /// The offline commands read a stopped state directory's SQLite file. A registry whose
    /// configuration names PostgreSQL keeps nothing there (`anonreg init` leaves an empty file
    /// behind), so they refuse rather than report on that file: an "audit log OK" or a release
    /// from it would be about no registry at all (docs/OPERATIONS.md §PostgreSQL and several
    /// nodes). The configuration is the one named (`--config`), else STATE_DIR/anonreg.toml, else
    /// the installed one that serves the directory (`$ANONREG_CONFIG` or
    /// /etc/anonreg/anonreg.toml, as for the service user). One that exists but does not load is
    /// refused too: which store the directory belongs to is then unknown. `instead` says what to
    /// do.
    static func requireSQLite(
        config path: String?, stateDirectory: String, keysDirectory: String? = nil, command: String, instead: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        let refusal = { (source: String) in
            CLIFailure.refused(
                "\(source) names a PostgreSQL registry ([storage] backend = \"postgresql\"): `\(command)` works offline only on a SQLite registry's state directory; \(instead)"
            )
        }
        let local = stateDirectory + "/anonreg.toml"
        if let named = path ?? (FileManager.default.fileExists(atPath: local) ? local : nil) {
            let config: DaemonConfig
            do { config = try DaemonConfig.load(path: named) } catch {
                throw CLIFailure.usage("configuration \(named): \(error)")
            }
            if case .postgresql = config.storage { throw refusal(named) }
            return
        }
        let installedPath = environment["ANONREG_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? "/etc/anonreg/anonreg.toml"
        if FileManager.default.fileExists(atPath: installedPath) {
            do { _ = try DaemonConfig.load(path: installedPath) } catch {
                throw CLIFailure.refused(
                    "cannot tell which store serves \(stateDirectory): the installed configuration \(installedPath) does not load (\(error)); name the configuration with --config"
                )
            }
        }
        if let installed = StateOwner.configuration(
            forStateDirectory: stateDirectory, keysDirectory: keysDirectory, environment: environment),
            case .postgresql = installed.storage
        {
            throw refusal(installedPath)
        }
    }
}

/// An input file named on the command line, opened before the command gives up root: `-` is
/// standard input.
struct InputFile: ~Copyable {
    let fd: Int32
    /// How messages name it: the path, or "standard input".
    let name: String

    init(_ path: String) throws {
        if path == "-" {
            fd = dup(0)
            name = "standard input"
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            name = path
        }
        guard fd >= 0 else { throw CLIFailure.failed("cannot open \(name): \(String(cString: strerror(errno)))") }
    }

    /// The whole file, for small inputs (a keyring backup).
    func readAll(limit: Int = 64 << 20) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw CLIFailure.failed("cannot read \(name): \(String(cString: strerror(errno)))") }
            if n == 0 { return bytes }
            bytes += chunk[0..<n]
            guard bytes.count <= limit else { throw CLIFailure.failed("\(name) is larger than \(limit) bytes") }
        }
    }

    deinit { close(fd) }
}

extension PassphraseInput {
    /// A `--passphrase-file` read before the command gives up root, when root owns it; one owned
    /// by someone else is read afterwards, as the state directory's owner.
    enum Early {
        case none
        case read(KeyMaterial)
        case later(String)

        init(file: String?) throws {
            guard let file else {
                self = .none
                return
            }
            var st = stat()
            guard geteuid() == 0, stat(file, &st) == 0, st.st_uid == 0 else {
                self = .later(file)
                return
            }
            self = .read(try PassphraseInput.obtain(file: file, purpose: "passphrase", confirm: false))
        }

        /// The passphrase: read earlier, read now, or asked on the terminal.
        func obtain(purpose: String, confirm: Bool) throws -> KeyMaterial {
            switch self {
            case .read(let material): material
            case .later(let file): try PassphraseInput.obtain(file: file, purpose: purpose, confirm: confirm)
            case .none: try PassphraseInput.obtain(file: nil, purpose: purpose, confirm: confirm)
            }
        }

        /// The keyring passphrase, only when the keyring in `directory` is sealed.
        func forKeyring(directory: String) throws -> KeyMaterial? {
            switch self {
            case .read(let material): material
            case .later(let file): try PassphraseInput.forKeyring(directory: directory, file: file)
            case .none: try PassphraseInput.forKeyring(directory: directory, file: nil)
            }
        }

        var isNone: Bool { if case .none = self { true } else { false } }
    }
}
