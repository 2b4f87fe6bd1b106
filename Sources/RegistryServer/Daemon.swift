internal import CAnonregLinux
import Foundation
import Logging
import Metrics
import NIOPosix
import Prometheus
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryProtocol
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// anonregd from start to exit.
public enum Daemon {
    /// Exit codes (docs/OPERATIONS.md §Exit codes).
    public enum Exit: Int32 {
        case ok = 0
        case failed = 1
        case config = 2
        case keys = 3
        case database = 4
        case socket = 5
    }

    /// Process hygiene first, as ssh-agent does: files private by default, no core dumps and no
    /// ptrace by other processes of the same user (PR_SET_DUMPABLE 0).
    public static func hardenProcess() {
        umask(0o077)
        _ = anonreg_set_dumpable(0)
        var none = rlimit(rlim_cur: 0, rlim_max: 0)
        _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &none)
        // A write beyond RLIMIT_FSIZE must fail with EFBIG (507), not kill the daemon.
        signal(SIGXFSZ, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
    }

    /// `commit` is the git commit of the build (`--version`, `anonreg_build_info`).
    public static func run(configPath: String, commit: String = "unknown", backend: any StorageBackend) async -> Exit {
        hardenProcess()
        let config: DaemonConfig
        do { config = try DaemonConfig.load(path: configPath) } catch {
            fail("configuration: \(error)")
            return .config
        }
        if let problem = serviceUserProblem(config) {
            fail("configuration: \(problem)")
            return .config
        }
        // Another daemon serving this registry is found before anything is read, removed or
        // written: the socket it answers on, then the state directory's lock (which also covers
        // a daemon given another socket path). The lock is held until this process exits.
        let address = ListenAddress.fromEnvironment(socketPath: config.socketPath, mode: config.socketMode)
        if case .path(let path, _) = address {
            do { try SocketPathGuard.prepare(path) } catch {
                fail("socket: \(error)")
                return .socket
            }
        }
        let lock: StateDirectoryLock
        do { lock = try StateDirectoryLock(stateDirectory: config.stateDirectory) } catch {
            fail("socket: \(error)")
            return .socket
        }
        defer { withExtendedLifetime(lock) {} }
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "anonregd")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        let keyring: Keyring
        do { keyring = try Keyring.load(from: KeyringSource.fromEnvironment(directory: config.keysDirectory)) } catch {
            fail("keyring: \(describe(error))")
            return .keys
        }
        for name in backend.removeStaleCopies(config: config) {
            logger.warning("removed a stale temporary backup/restore copy", metadata: ["file": "\(name)"])
        }
        // The daemon keeps the keys and lends them to the backend (docs/CRYPTO.md §Key custody).
        let keys = KeyCustody(keyring)
        let store: any RegistryBackend
        do { store = try await backend.open(config: config, keys: keys, logger: logger) } catch {
            fail("database: \(error)")
            return .database
        }
        // docs/CRYPTO.md §Erasure ledger: the ledger opens for append and extends what the
        // database recorded, or nothing starts (a keys problem: exit 3).
        do { try await store.prepareErasureLedger() } catch {
            fail("keyring: \(error)")
            try? store.close()
            return .keys
        }
        // docs/CRYPTO.md §Audit, "Anchor": the log reaches the signed anchor beside the keyring
        // and agrees with it, or nothing starts (a database problem: exit 4).
        do { try await store.checkAuditAnchor() } catch {
            fail("database: \(error)")
            try? store.close()
            return .database
        }
        let space = SpaceReserve(stateDirectory: config.stateDirectory, mebibytes: config.spaceReserveMiB, logger: logger)
        space.prepare()
        let app = RegistryApp(
            config: config, store: store, keys: keys, clock: SystemDayClock(), metrics: registry, logger: logger, space: space)
        await app.recordPolicyIfChanged(actor: "system start")
        await app.recordPrivacyIfChanged(actor: "system start")
        await app.initialiseOperationalGauges(version: AnonregVersionInfo.software, commit: commit)
        app.applyDescriptorBudget()
        let notifier = SystemdNotifier()
        app.storageHealth.attach(notifier)
        let server = RegistryServerService(app: app, address: address, notifier: notifier)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: server), .init(service: WatchdogService(notifier: notifier)),
                    .init(service: SweeperService(app: app)), .init(service: ReloadService(app: app, configPath: configPath)),
                    .init(service: AuditCheckpointService(app: app)),
                    .init(service: SpaceReserveService(reserve: space)), .init(service: LimitsService(app: app)),
                    .init(service: StorageHealthService(app: app)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.notice(
            "anonregd starting",
            metadata: [
                "version": "\(AnonregVersionInfo.software)", "commit": "\(commit)", "config": "\(configPath)",
            ])
        var exit = Exit.ok
        do { try await group.run() } catch let error as ListenError {
            fail("socket: \(error)")
            exit = .socket
        } catch {
            fail("\(error)")
            exit = .failed
        }
        // The last checkpoint signs everything written before shutdown, so a dropped tail shows.
        do { _ = try await store.checkpointAudit() } catch { logger.error("final audit checkpoint failed: \(error)") }
        do { try store.close() } catch { logger.error("closing the database failed: \(error)") }
        logger.notice("anonregd stopped")
        return exit
    }

    static func fail(_ message: String) {
        FileHandle.standardError.write(Data(("anonregd: " + message + "\n").utf8))
    }

    /// `daemon.user` names the account anonregd must run as: one that exists, and this process.
    static func serviceUserProblem(_ config: DaemonConfig) -> String? {
        guard let spec = config.serviceUserSpec else { return nil }
        guard let user = config.serviceUser else {
            return
                "\(config.path): daemon.user is \"\(spec)\", which is not a user on this host (create it with systemd-sysusers, or fix daemon.user)"
        }
        guard geteuid() == user.uid else {
            return "\(config.path): daemon.user is \(user), but anonregd runs as uid \(geteuid()); run it as that user "
                + "(User= in the unit; by hand: setpriv --reuid=\(user.name ?? String(user.uid)) --regid=\(user.gid) --init-groups anonregd ...)"
        }
        return nil
    }

    /// The daemon's words for a keyring it cannot load. A sealed keyring's passphrase reaches
    /// anonregd only as a systemd credential; it has no option for one.
    static func describe(_ error: KeyringError) -> String {
        guard error == .passphraseRequired else { return "\(error)" }
        return "this keyring is sealed with a passphrase, and anonregd found no systemd credential "
            + "\(KeyringSource.passphraseCredential) (no $CREDENTIALS_DIRECTORY/\(KeyringSource.passphraseCredential)). "
            + "Give it with LoadCredentialEncrypted= (see anonregd.service.d/credentials.conf.example and docs/OPERATIONS.md "
            + "§Keys from systemd credentials)."
    }
}

typealias AnonregVersionInfo = AnonregVersion
