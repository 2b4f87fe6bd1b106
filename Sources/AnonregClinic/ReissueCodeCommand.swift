import ArgumentParser
import Foundation
import RegistryProtocol

/// `anonreg reissue-code CASE`: `POST /v1/cases/{case}/code`, a new patient code for a lost one.
public struct ReissueCodeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reissue-code",
        abstract: "Issue a new patient code for a case (for a lost code); the old code stops working at once.",
        discussion: "The new code is shown only this once. The case handles and the history do not change.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The case handle (case_…).") var caseHandle: String
    public init() {}

    public func run() throws {
        let client = ClinicClient(options: connection)
        let (reply, raw) = try client.call("POST", "/v1/cases/\(caseHandle)/code", as: CodeResponse.self)
        client.output(raw) {
            Table.render([("case", caseHandle), ("new patient code", reply.code)])
                + "\n\nThe old code no longer works. Give the new code to the patient (for example on a card). It is shown only now."
        }
    }
}
