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
            supports socket activation and sd_notify (Type=notify, WatchdogSec).

            Exit codes: 0 stopped cleanly, 1 failed while running, 2 bad configuration, \
            3 keyring refused, 4 database refused, 5 socket refused (another daemon answers, \
            or the path is unsafe).
            """,
        version: AnonregVersion.software
    )

    @Option(name: .long, help: "Path of the anonreg.toml configuration file (see `anonreg init`).")
    var config: String

    func run() async throws {
        let exit = await Daemon.run(configPath: config)
        if exit != .ok { throw ExitCode(exit.rawValue) }
    }
}
