import ArgumentParser
import RegistryProtocol

/// `anonregd`: the registry daemon. Serving over the Unix socket lands with the daemon issue;
/// until then it parses its options and reports its version.
@main
struct AnonregDaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anonregd",
        abstract: "The anonreg registry daemon: a pseudonymous treatment registry on a Unix socket.",
        discussion: """
            anonregd serves protocol v1 (HTTP/1.1 + JSON) on a local Unix socket to clinic systems, \
            authenticating peers by their kernel credentials. See docs/PROTOCOL.md.
            """,
        version: AnonregVersion.software
    )

    @Option(name: .long, help: "Path of the anonreg.toml configuration file.")
    var config: String?

    func run() throws {
        print("anonregd \(AnonregVersion.software) (protocol v\(AnonregVersion.protocolVersion))")
        print("The daemon does not serve yet in this release; see README.md.")
    }
}
