import AnonregAdmin
import AnonregBuildInfo
import AnonregClinic
import ArgumentParser
import RegistryProtocol

/// `anonreg`: the admin and clinic command-line client.
@main
struct AnonregCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anonreg",
        abstract: "Command-line client for the anonreg pseudonymous treatment registry.",
        discussion: """
            Clinic commands (enrol, status, checkup, checkups, due, link, reissue-code, withdraw, \
            self, anonymous-episode, linkage) talk to anonregd over its Unix socket; `card` makes the \
            patient's printable card from an enrolment or re-issue answer, without the daemon. Their \
            human output is in Russian or English (--lang ru|en, else LC_ALL, LC_MESSAGES or LANG). \
            Admin commands: sweep, audit, stats, keys and backup create \
            (through the daemon); init, clinics, config-template, backup verify/restore and keys \
            backup/restore (on files). Commands that use the daemon take \
            --socket PATH and read ANONREG_SOCKET.

            Exit codes: 0 ok, 1 failed, 2 usage, 3 refused by policy, 4 daemon unreachable.
            """,
        version: BuildInfo.versionText(AnonregVersion.software),
        subcommands: ClinicCommandSet.subcommands + [
            SweepCommand.self, KeysCommand.self, BackupCommand.self, InitCommand.self, ClinicsCommand.self, AuditCommand.self,
            ConfigTemplateCommand.self, StatsCommand.self,
        ]
    )

    static func main() {
        ClinicCommandSet.main(AnonregCommand.self, name: "anonreg") { error in
            (error as? CLIFailure).map { ($0.exitCode, "\($0)") }
        }
    }
}
