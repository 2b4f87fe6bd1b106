import ArgumentParser
import Foundation
import RegistryProtocol
import RegistryText

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
        client.output(raw) { Self.render(reply.checkups, connection.language) }
    }

    /// One row per check-up; a note's line breaks are shown as " / " so that a row stays a line.
    static func render(_ checkups: [CheckupWire], _ language: Language = .en) -> String {
        func text(_ key: String) -> String { Catalogue.text(key, language) }
        guard !checkups.isEmpty else { return text("checkups.none") }
        func list(_ items: [String]) -> String { items.isEmpty ? "-" : items.joined(separator: ",") }
        let rows = checkups.map { c -> [String] in
            let word = text("outcome.\(c.outcome.rawValue)")
            let outcome = c.relapseAction.map { "\(word) (\(text("relapseAction.\($0.rawValue)")))" } ?? word
            let note = c.note.split(whereSeparator: \.isNewline).map { $0.replacingOccurrences(of: "\t", with: " ") }.joined(
                separator: " / ")
            return [
                Catalogue.date(c.on, language), outcome, c.clinic, c.correction ? text("checkups.yes") : "-", list(c.substances),
                list(c.treatment), note.isEmpty ? "-" : note,
            ]
        }
        let header = ["on", "outcome", "clinic", "correction", "substances", "treatment", "note"].map { text("checkups.header.\($0)") }
        return Table.render(header: header, rows: rows)
    }
}
