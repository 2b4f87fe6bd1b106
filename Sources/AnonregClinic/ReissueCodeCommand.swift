import ArgumentParser
import Foundation
import RegistryProtocol
import RegistryText

/// `anonreg reissue-code CASE`: a new patient code for a case (`POST /v1/cases/{case}/code`),
/// for a patient who lost the card. The old code stops working at once.
public struct ReissueCodeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reissue-code",
        abstract: "Issue a new patient code for a case (for a lost code); the old code stops working at once.",
        discussion:
            "The new code is shown only this once. The case handles and the history do not change. --card writes the patient's new card.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var card: CardOptions
    @Argument(help: "The case handle (case_…).") var caseHandle: String
    public init() {}

    public func run() throws {
        let language = connection.language
        let cardFile = try card.prepare(language: language)
        let client = ClinicClient(options: connection)
        let reply: CodeResponse
        let raw: Data
        do { (reply, raw) = try client.call("POST", "/v1/cases/\(caseHandle)/code", as: CodeResponse.self) } catch {
            cardFile?.discard()
            throw error
        }
        client.output(raw) {
            Table.render([
                (Catalogue.text("label.case", language), caseHandle), (Catalogue.text("label.newPatientCode", language), reply.code),
            ])
                + "\n\n" + Catalogue.text("reissue.done", language)
        }
        try card.finish(cardFile, code: reply.code, language: language)
    }
}
