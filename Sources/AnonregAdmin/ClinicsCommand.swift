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
        static let configuration = CommandConfiguration(abstract: "Add a clinic: connections from UID (or primary group GID) act as it.")
        @OptionGroup var location: ConfigLocation
        @Argument(help: "Clinic id: 1-64 of a-z 0-9 - _.") var id: String
        @Option(name: .customLong("uid"), help: "A uid of the clinic system (repeatable).") var uids: [UInt32] = []
        @Option(name: .customLong("gid"), help: "A gid of the clinic system (repeatable).") var gids: [UInt32] = []

        func run() throws {
            let text = try location.read()
            let edited: String
            do { edited = try ConfigEditor.addClinic(text, id: id, uids: uids, gids: gids, path: location.path) } catch {
                throw error == .needsMember || error == .invalidID(id) ? CLIFailure.usage(error.description) : CLIFailure.refused(error.description)
            }
            try location.write(edited)
            print("Added clinic \(id) to \(location.path). Apply it with SIGHUP (systemctl reload anonregd) or a restart.")
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
            let rows = config.clinics.map { [$0.id.rawValue, $0.uids.map(String.init).joined(separator: ","), $0.gids.map(String.init).joined(separator: ",")] }
            let header = ["CLINIC", "UIDS", "GIDS"]
            let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
            for row in [header] + rows {
                print(row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
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
            do { edited = try ConfigEditor.removeClinic(try location.read(), id: id, path: location.path) } catch let error as ConfigEditor.EditError {
                throw CLIFailure.refused(error.description)
            }
            try location.write(edited)
            print("Removed clinic \(id) from \(location.path). Its cases stay reachable by the patients' codes.")
        }
    }
}
