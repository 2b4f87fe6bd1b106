import ArgumentParser
import Foundation
import RegistryConfig

/// `anonreg clinics add|list|remove`: onboard clinics without hand-editing TOML.
public struct ClinicsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "clinics",
        abstract: "Add, list or remove clinics in anonreg.toml (comments are kept).",
        discussion: """
            Changes apply when anonregd is restarted or receives SIGHUP \
            (systemctl reload anonregd). Removing a clinic does not erase anything: its cases \
            stay reachable by the patients' codes at any other clinic.
            """,
        subcommands: [Add.self, List.self, Remove.self])

    public init() {}

    struct ConfigLocation: ParsableArguments {
        @Option(help: "Path of anonreg.toml (default: $ANONREG_CONFIG, then /etc/anonreg/anonreg.toml).")
        var config: String?

        var path: String {
            config ?? ProcessInfo.processInfo.environment["ANONREG_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? "/etc/anonreg/anonreg.toml"
        }

        func read() throws -> String {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw CLIFailure.failed("cannot read \(path)")
            }
            return text
        }

        /// Replaces the file atomically, keeping its mode.
        func write(_ text: String) throws {
            var st = stat()
            let mode = stat(path, &st) == 0 ? st.st_mode & 0o777 : 0o640
            let temp = path + ".tmp-\(getpid())"
            guard FileManager.default.createFile(atPath: temp, contents: Data(text.utf8), attributes: [.posixPermissions: Int(mode)]) else {
                throw CLIFailure.failed("cannot write \(temp)")
            }
            chmod(temp, mode)
            if st.st_uid != 0 || st.st_gid != 0 { chown(temp, st.st_uid, st.st_gid) }
            guard rename(temp, path) == 0 else {
                unlink(temp)
                throw CLIFailure.failed("cannot replace \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a clinic: connections from UID (or primary group GID) act as it.",
            discussion: """
                With --ssh-account NAME --ssh-key FILE the clinic is remote: a new system account \
                NAME is created (no password, no shell, in the socket's group and in the group \
                the sshd drop-in restricts), FILE's public key is installed for it, its uid is \
                added as the clinic, and the command to run on the clinic's host is printed \
                (docs/OPERATIONS.md §Remote clinics).
                """)
        @OptionGroup var location: ConfigLocation
        @Argument(help: "Clinic id: 1-64 of a-z 0-9 - _.") var id: String
        @Option(name: .customLong("uid"), help: "A uid of the clinic system (repeatable).") var uids: [UInt32] = []
        @Option(name: .customLong("gid"), help: "A gid of the clinic system (repeatable).") var gids: [UInt32] = []
        @Option(help: "Create this system account for a remote clinic that forwards the socket over OpenSSH.") var sshAccount: String?
        @Option(help: "The remote clinic's OpenSSH public key file (with --ssh-account).") var sshKey: String?
        @Option(help: "Host name the clinic connects to, for the printed command (default: this host's name).") var sshHost: String?
        @Option(help: "Directory of the remote clinics' authorized_keys files (the drop-in's AuthorizedKeysFile).")
        var authorizedKeysDir = "/etc/anonreg/ssh/authorized_keys"
        @Option(help: "The socket's group, which lets the account connect.") var socketGroup = "anonreg-clinic"
        @Option(help: "The group the sshd drop-in restricts (Match Group).") var sshGroup = "anonreg-remote"

        func validate() throws {
            guard (sshAccount == nil) == (sshKey == nil) else { throw ValidationError("--ssh-account and --ssh-key go together") }
            if let sshAccount, !RemoteClinicAccount.validName(sshAccount) {
                throw ValidationError("--ssh-account must be 1 to 32 of a-z 0-9 _ -, starting with a letter or _")
            }
        }

        func run() throws {
            let text = try location.read()
            func edit(_ uids: [UInt32]) throws -> String {
                do { return try ConfigEditor.addClinic(text, id: id, uids: uids, gids: gids, path: location.path) } catch {
                    throw error == .needsMember || error == .invalidID(id)
                        ? CLIFailure.usage(error.description) : CLIFailure.refused(error.description)
                }
            }
            guard let sshAccount, let sshKey else {
                try location.write(try edit(uids))
                print("Added clinic \(id) to \(location.path). Apply it with SIGHUP (systemctl reload anonregd) or a restart.")
                return
            }
            // Everything that can be checked is checked before the account exists.
            let key = try RemoteClinicAccount.publicKey(from: sshKey)
            _ = try edit(uids + [UInt32.max - 1])
            try addRemote(account: sshAccount, key: key, registrySocket: try socketPath(text), edit: edit)
        }

        private func socketPath(_ text: String) throws -> String {
            do { return try DaemonConfig.parse(text, path: location.path).socketPath } catch {
                throw CLIFailure.failed("\(error)")
            }
        }

        private func addRemote(account sshAccount: String, key: String, registrySocket: String, edit: ([UInt32]) throws -> String) throws {
            let account = RemoteClinicAccount(
                name: sshAccount, clinic: id, socketGroup: socketGroup, sshGroup: sshGroup,
                keysDirectory: authorizedKeysDir)
            let uid = try account.create(key: key)
            do { try location.write(try edit(uids + [uid])) } catch {
                account.remove()
                throw error
            }
            print(
                """
                Created the system account \(sshAccount) (uid \(uid)) for clinic \(id); its key is in \(account.keyFile).
                Added clinic \(id) to \(location.path). Apply it with SIGHUP (systemctl reload anonregd) or a restart.

                On the clinic's host, keep the forward up with anonreg-clinic-forward.service (docs/OPERATIONS.md §Remote clinics), or run:
                  \(account.clinicSideCommand(host: sshHost ?? ProcessInfo.processInfo.hostName, registrySocket: registrySocket))
                """)
            if !FileManager.default.fileExists(atPath: "/etc/ssh/sshd_config.d/anonreg-remote-clinics.conf") {
                print(
                    "\nNote: /etc/ssh/sshd_config.d/anonreg-remote-clinics.conf is not installed; without it sshd does not restrict \(sshAccount) (docs/OPERATIONS.md §Remote clinics)."
                )
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the configured clinics.")
        @OptionGroup var location: ConfigLocation
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let config: DaemonConfig
            do { config = try DaemonConfig.parse(try location.read(), path: location.path) } catch let error as ConfigError {
                throw CLIFailure.failed(error.description)
            }
            if json {
                let rows = config.clinics.map { "{\"id\":\"\($0.id)\",\"uids\":\($0.uids),\"gids\":\($0.gids)}" }
                print("{\"clinics\":[\(rows.joined(separator: ","))]}")
                return
            }
            let rows = config.clinics.map {
                [$0.id.rawValue, $0.uids.map(String.init).joined(separator: ","), $0.gids.map(String.init).joined(separator: ",")]
            }
            let header = ["CLINIC", "UIDS", "GIDS"]
            let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
            for row in [header] + rows {
                print(
                    row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                        .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a clinic (its cases stay reachable by code).")
        @OptionGroup var location: ConfigLocation
        @Argument(help: "Clinic id.") var id: String

        func run() throws {
            let edited: String
            do { edited = try ConfigEditor.removeClinic(try location.read(), id: id, path: location.path) } catch let error
                as ConfigEditor.EditError
            {
                throw CLIFailure.refused(error.description)
            }
            try location.write(edited)
            print("Removed clinic \(id) from \(location.path). Its cases stay reachable by the patients' codes.")
            print(
                "If it was a remote clinic, its system account and key file stay: remove them with userdel NAME and rm /etc/anonreg/ssh/authorized_keys/NAME."
            )
        }
    }
}
