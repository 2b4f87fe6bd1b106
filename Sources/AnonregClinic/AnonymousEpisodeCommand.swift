import ArgumentParser
import Foundation
import RegistryProtocol
import RegistryText

/// `anonreg anonymous-episode`: `POST /v1/episodes/anonymous`, a treatment episode that is only
/// counted: no subject, no code, nothing about the person is stored.
public struct AnonymousEpisodeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "anonymous-episode",
        abstract: "Count an anonymous treatment episode for statistics; nothing about the person is stored.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Category from the registry's config, e.g. dependence or harmful-use.") var category: String
    @Option(help: "Date of the episode, YYYY-MM-DD (default: today).") var on: String?
    public init() {}

    private struct Body: Encodable {
        var category: String
        var on: String
    }

    public func run() throws {
        let day = try dayArgument(on ?? ClinicDates.today, "--on", connection.language)
        let client = ClinicClient(options: connection)
        let (_, raw) = try client.call("POST", "/v1/episodes/anonymous", body: Body(category: category, on: day), as: CountedResponse.self)
        client.output(raw) {
            Catalogue.text(
                "anonymousEpisode.counted", connection.language,
                ["category": category, "on": Catalogue.date(Day(day)!, connection.language)])
        }
    }
}
