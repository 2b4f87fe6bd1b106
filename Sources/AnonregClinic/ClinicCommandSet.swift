import ArgumentParser
import Foundation

/// The clinic commands, in the order both executables list them: `anonreg-clinic`, which links
/// nothing else (no keyring, no database: scripts/check-clinic-binary.sh proves it from the
/// linked binary), and `anonreg`, which adds the admin commands after them.
public enum ClinicCommandSet {
    public static let subcommands: [any ParsableCommand.Type] = [
        HealthCommand.self, EnrolCommand.self, StatusCommand.self, CheckupCommand.self, DueCommand.self,
        LinkCommand.self, WithdrawCommand.self, SelfCommand.self, LinkageCommand.self, ReissueCodeCommand.self,
        CheckupsCommand.self, AnonymousEpisodeCommand.self, CardCommand.self,
    ]

    /// The shared `main`: hardening first, then the command; a `ClinicFailure` exits with its
    /// code, and a usage error exits 2 (not ArgumentParser's 64), as docs/OPERATIONS.md §Exit
    /// codes says. `otherFailure` maps the caller's own error types (the admin side's).
    public static func main<Command: ParsableCommand>(
        _ command: Command.Type, name: String, otherFailure: (any Error) -> (code: Int32, text: String)? = { _ in nil }
    ) -> Never {
        ProcessHardening.apply()
        do {
            var parsed = try command.parseAsRoot()
            try parsed.run()
            command.exit()
        } catch let failure as ClinicFailure {
            fail(name, "\(failure)", failure.exitCode)
        } catch {
            if let (code, text) = otherFailure(error) { fail(name, text, code) }
            if command.exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((command.fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            command.exit(withError: error)
        }
    }

    private static func fail(_ name: String, _ text: String, _ code: Int32) -> Never {
        FileHandle.standardError.write(Data("\(name): \(text)\n".utf8))
        Foundation.exit(code)
    }
}
