import AnonregBuildInfo
import AnonregClinic
import ArgumentParser
import RegistryProtocol

/// `anonreg-clinic`: the clinic commands alone, for a clinic's host. It links no keyring and no
/// database code (scripts/check-clinic-binary.sh checks the linked binary in `make test`), so a
/// clinic host carries nothing that could open the registry even if the binary were misused.
@main
struct AnonregClinicCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anonreg-clinic",
        abstract: "The clinic commands of the anonreg registry, for a clinic's host: no keys, no database.",
        discussion: """
            The same clinic commands as anonreg(1) (enrol, status, checkup, checkups, due, link, \
            reissue-code, withdraw, self, anonymous-episode, linkage, health) talk to anonregd over \
            its Unix socket, or over a remote clinic's socket that OpenSSH forwards (Remote clinics \
            in docs/OPERATIONS.md); `card` makes the patient's printable card from an enrolment or re-issue \
            answer, without the daemon. Their human output is in Russian or English (--lang ru|en, \
            else LC_ALL, LC_MESSAGES or LANG). They take --socket PATH and read ANONREG_SOCKET.

            Exit codes: 0 ok, 1 failed, 2 usage, 3 refused by policy, 4 daemon unreachable.
            """,
        version: BuildInfo.versionText(AnonregVersion.software),
        subcommands: ClinicCommandSet.subcommands
    )

    static func main() {
        ClinicCommandSet.main(AnonregClinicCommand.self, name: "anonreg-clinic")
    }
}
