import ArgumentParser
import Foundation
import RegistryProtocol

/// `anonreg checkups CASE`: `GET /v1/cases/{case}/checkups`, every clinic's check-ups of the
/// subject in the order they were recorded, corrections included.
public struct CheckupsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "checkups",
        abstract: "List a case's check-ups from every clinic, in the order they were recorded (corrections included).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The case handle (case_…).") var caseHandle: String
    public init() {}

    public func run() throws {
        let client = ClinicClient(options: connection)
        let (reply, raw) = try client.call("GET", "/v1/cases/\(caseHandle)/checkups", as: CheckupsResponse.self)
        client.output(raw) { Self.render(reply.checkups) }
    }

    /// One row per check-up; a note's line breaks are shown as " / " so that a row stays a line.
    static func render(_ checkups: [CheckupWire]) -> String {
        guard !checkups.isEmpty else { return "No check-up is recorded for this case." }
        func list(_ items: [String]) -> String { items.isEmpty ? "-" : items.joined(separator: ",") }
        let rows = checkups.map { c -> [String] in
            let outcome = c.relapseAction.map { "\(c.outcome.rawValue) (\($0.rawValue))" } ?? c.outcome.rawValue
            let note = c.note.split(whereSeparator: \.isNewline).map { $0.replacingOccurrences(of: "\t", with: " ") }.joined(separator: " / ")
            return [c.on.description, outcome, c.clinic, c.correction ? "yes" : "-", list(c.substances), list(c.treatment), note.isEmpty ? "-" : note]
        }
        return Table.render(header: ["ON", "OUTCOME", "CLINIC", "CORRECTION", "SUBSTANCES", "TREATMENT", "NOTE"], rows: rows)
    }
}
