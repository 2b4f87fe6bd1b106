import AnonregBuildInfo
import ArgumentParser
import Foundation
import RegistryProtocol
import RegistryServer

/// `anonregd --config PATH`: the registry daemon.
@main
struct AnonregDaemonCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anonregd",
        abstract: "The anonreg registry daemon: a pseudonymous treatment registry on a Unix socket.",
        discussion: """
            anonregd serves protocol v1 (HTTP/1.1 + JSON) on a local Unix socket to clinic systems, \
            authenticating peers by their kernel credentials (docs/PROTOCOL.md). Under systemd it \
            supports socket activation and sd_notify (Type=notify, WatchdogSec). SIGHUP re-reads \
            the configuration and the keyring's KEK versions and logs what changed; SIGTERM and SIGINT drain in-flight requests \
            and stop.

            --check-config checks everything a start would (the configuration, the service user, \
            the socket directory, the keyring and its passphrase, the database and the erasure \
            ledger) with the same messages, writes nothing, and exits 0 or 2.

            --record-restore, after a PostgreSQL registry's database was restored with pg_restore \
            or a base backup, records the restore in the audit log, signed, and moves this node's \
            audit anchor, so that every node starts again on the restored log. Run it on one node \
            while no node serves; the operations guide gives the steps.
            """,
        version: BuildInfo.versionText(AnonregVersion.software)
    )

    @Option(name: .long, help: "Path of the anonreg.toml configuration file (see `anonreg init`).")
    var config: String

    @Flag(name: .long, help: "Check the configuration, keyring and database as a start would, change nothing, and exit (0 valid, 2 not).")
    var checkConfig = false

    @Flag(name: .long, help: "After a restore of a PostgreSQL registry's database, record it in the audit log and exit.")
    var recordRestore = false

    func validate() throws {
        if checkConfig && recordRestore { throw ValidationError("--check-config and --record-restore cannot be combined") }
    }

    func run() async throws {
        if recordRestore {
            let exit = await Daemon.recordRestore(configPath: config, backend: ConfiguredBackend())
            if exit != .ok { throw ExitCode(exit.rawValue) }
            return
        }
        if checkConfig {
            let exit = await Daemon.checkConfig(configPath: config, backend: ConfiguredBackend())
            if exit != .ok { throw ExitCode(Daemon.Exit.config.rawValue) }
            return
        }
        let exit = await Daemon.run(configPath: config, commit: BuildInfo.commit, backend: ConfiguredBackend())
        if exit != .ok { throw ExitCode(exit.rawValue) }
    }

    /// Usage errors (no arguments at all, a missing --config, an unknown option) exit 2, as
    /// docs/OPERATIONS.md §Exit codes says, not ArgumentParser's 64.
    static func main() async {
        if CommandLine.arguments.count == 1 {
            FileHandle.standardError.write(Data((helpMessage() + "\n").utf8))
            Foundation.exit(Daemon.Exit.config.rawValue)
        }
        do {
            var command = try parseAsRoot()
            if let daemon = command as? AnonregDaemonCommand {
                try await daemon.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(Daemon.Exit.config.rawValue)
            }
            exit(withError: error)
        }
    }
}
