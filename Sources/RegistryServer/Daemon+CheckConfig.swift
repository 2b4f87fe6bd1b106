import Foundation
import RegistryConfig
import RegistryKeyring

#if canImport(Glibc)
    import Glibc
#endif

extension Daemon {
    /// `anonregd --check-config --config FILE` (docs/OPERATIONS.md §Checking a configuration):
    /// everything a start checks, with the same messages, and nothing written: the configuration
    /// and its uids and gids, the service user, the socket directory, the keyring (permissions,
    /// passphrase, key checks), the database (anonreg's, undamaged, not newer than this release)
    /// and the erasure ledger. Exit 0 when a start would get past all of them, else 2.
    ///
    /// Run as root, it checks as the service user (or the state directory's owner), as the
    /// offline commands do, so that the keyring's ownership is judged as the daemon will see it.
    public static func checkConfig(configPath: String, backend: any StorageBackend) async -> Exit {
        hardenProcess()
        let config: DaemonConfig
        do { config = try DaemonConfig.load(path: configPath) } catch {
            fail("configuration: \(error)")
            return .config
        }
        var notes: [String] = []
        if geteuid() == 0, config.serviceUserSpec != nil || ownerOf(config.stateDirectory).map({ $0 != 0 }) == true {
            if config.serviceUserSpec != nil, config.serviceUser == nil {
                fail("configuration: \(serviceUserProblem(config) ?? "")")
                return .config
            }
            do {
                if let line = try StateOwner.workAsOwner(of: config.stateDirectory, serviceUser: config.serviceUser) {
                    notes.append(line.replacingOccurrences(of: "anonreg: working as", with: "checked as"))
                }
            } catch {
                fail("configuration: \(error)")
                return .config
            }
        }
        if let problem = serviceUserProblem(config) {
            fail("configuration: \(problem)")
            return .config
        }
        switch SocketPathGuard.inspect(config.socketPath) {
        case .failure(let error):
            fail("socket: \(error)")
            return .config
        case .success(let note):
            if let note { notes.append(note) }
        }
        let keyring: Keyring
        do { keyring = try Keyring.load(from: KeyringSource.fromEnvironment(directory: config.keysDirectory)) } catch {
            fail("keyring: \(describe(error))")
            return .config
        }
        let inspection: StorageInspection
        do { inspection = try await backend.inspect(config: config, keyring: keyring) } catch {
            // The start reports the ledger as a keyring problem and the rest as the database's.
            if case .unusableDatabase(let path, _) = error, path.hasSuffix("/" + ErasureLedger.fileName) {
                fail("keyring: \(error)")
            } else {
                fail("database: \(error)")
            }
            return .config
        }
        // A start also opens the ledger for append.
        let ledgerPath = keyring.source.directory + "/" + ErasureLedger.fileName
        if access(FileManager.default.fileExists(atPath: ledgerPath) ? ledgerPath : keyring.source.directory, W_OK) != 0 {
            fail("keyring: \(ledgerPath) cannot be opened for append: \(String(cString: strerror(errno)))")
            return .config
        }
        let clinics = config.clinics.map { "\($0.id)" }.joined(separator: ", ")
        print(
            """
            \(configPath): valid
              clinics       \(config.clinics.count)\(clinics.isEmpty ? "" : " (\(clinics))")
              admins        uid \(DaemonConfig.list(config.adminUIDs))
              statisticians uid \(DaemonConfig.list(config.statisticianUIDs))
              monitors      uid \(DaemonConfig.list(config.monitorUIDs))
              keyring       \(config.keysDirectory): primary KEK \(keyring.primaryKEK.version), \(keyring.isSealed ? "passphrase-sealed" : "not sealed")
              database      \(config.storage == .sqlite ? config.databasePath : config.storage.summary): \(inspection.exists ? "anonreg's" : "absent (a start creates it)")\
            \(inspection.pendingMigrations.isEmpty ? "" : ", a start applies \(inspection.pendingMigrations.count) migration(s)")
              erasures      \(inspection.erasures) in the ledger
            """)
        for note in notes { print("  note: \(note)") }
        return .ok
    }

    static func ownerOf(_ path: String) -> uid_t? {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_uid : nil
    }
}

extension SocketPathGuard {
    /// The checks of `prepare` without removing or creating anything: a failure (what a start
    /// would refuse), or a note about what a start would find.
    static func inspect(_ path: String) -> Result<String?, ListenError> {
        let directory = (path as NSString).deletingLastPathComponent
        var st = stat()
        guard stat(directory.isEmpty ? "." : directory, &st) == 0 else {
            if errno == ENOENT {
                return .success("the socket directory \(directory) does not exist yet (anonregd.socket or systemd-tmpfiles creates it)")
            }
            return .failure(.io(path: directory, operation: "stat", errno: errno))
        }
        // The same check a start makes: the directory and every ancestor (docs/OPERATIONS.md §Socket).
        do { try checkDirectories(of: path) } catch { return .failure(error) }
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return .success(nil) }
            return .failure(.io(path: path, operation: "stat", errno: errno))
        }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { return .failure(.notASocket(path: path)) }
        return .success(answers(path) ? "a daemon (or systemd's socket unit) answers on \(path) now: a reload applies this file" : nil)
    }
}
