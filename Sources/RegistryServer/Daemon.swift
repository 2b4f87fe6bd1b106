#if canImport(Glibc)
import Glibc
#endif
import CAnonregLinux
import Foundation
import Logging
import Metrics
import NIOPosix
import Prometheus
import RegistryConfig
import RegistryCore
import RegistryKeyring
import RegistryStore
import ServiceLifecycle

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

    public static func run(configPath: String) async -> Exit {
        hardenProcess()
        let config: DaemonConfig
        do { config = try DaemonConfig.load(path: configPath) } catch {
            fail("configuration: \(error)")
            return .config
        }
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
            fail("keyring: \(error)")
            return .keys
        }
        let stateDirectory = (config.databasePath as NSString).deletingLastPathComponent
        for name in SQLiteRegistryStore.removeStaleCopies(in: stateDirectory.isEmpty ? "." : stateDirectory) {
            logger.warning("removed a stale temporary backup/restore copy", metadata: ["file": "\(name)"])
        }
        let store: SQLiteRegistryStore
        do { store = try SQLiteRegistryStore(path: config.databasePath, keyring: keyring, auditCheckpointEvery: config.audit.checkpointEvery) } catch {
            fail("database: \(error)")
            return .database
        }
        // docs/CRYPTO.md §Erasure ledger: the ledger opens for append and extends what the
        // database recorded, or nothing starts (a keys problem: exit 3).
        do { _ = try store.checkErasureLedger() } catch {
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
        let app = RegistryApp(config: config, store: store, clock: SystemDayClock(), metrics: registry, logger: logger, space: space)
        await app.recordPolicyIfChanged(actor: "system start")
        app.applyDescriptorBudget()
        let notifier = SystemdNotifier()
        let address = ListenAddress.fromEnvironment(socketPath: config.socketPath, mode: config.socketMode)
        let server = RegistryServerService(app: app, address: address, notifier: notifier)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: server), .init(service: WatchdogService(notifier: notifier)),
                       .init(service: SweeperService(app: app)), .init(service: ReloadService(app: app, configPath: configPath)),
                       .init(service: AuditCheckpointService(app: app)),
                       .init(service: SpaceReserveService(reserve: space)), .init(service: LimitsService(app: app))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.notice("anonregd starting", metadata: ["version": "\(AnonregVersionInfo.software)", "config": "\(configPath)"])
        var exit = Exit.ok
        do { try await group.run() } catch let error as ListenError {
            fail("socket: \(error)")
            exit = .socket
        } catch {
            fail("\(error)")
            exit = .failed
        }
        // The last checkpoint signs everything written before shutdown, so a dropped tail shows.
        do { try await store.checkpointAudit() } catch { logger.error("final audit checkpoint failed: \(error)") }
        do { try store.close() } catch { logger.error("closing the database failed: \(error)") }
        logger.notice("anonregd stopped")
        return exit
    }

    static func fail(_ message: String) {
        FileHandle.standardError.write(Data(("anonregd: " + message + "\n").utf8))
    }
}

import RegistryProtocol
typealias AnonregVersionInfo = AnonregVersion
