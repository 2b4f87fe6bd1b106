import ArgumentParser
import RegistryProtocol

/// `anonreg`: the admin and clinic command-line client.
@main
struct AnonregCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anonreg",
        abstract: "Command-line client for the anonreg pseudonymous treatment registry.",
        discussion: """
            Clinic commands talk to anonregd over its Unix socket; admin commands manage keys, \
            backups, the audit log and statistics. Every command takes --socket PATH and reads \
            ANONREG_SOCKET.
            """,
        version: AnonregVersion.software
    )
}
