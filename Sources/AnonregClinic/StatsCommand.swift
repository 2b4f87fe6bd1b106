import ArgumentParser
import Foundation
import RegistryProtocol
import RegistryStats

/// `anonreg stats`: aggregate statistics with small cells suppressed, for admins and
/// statisticians. The daemon sends JSON; tables, CSV and the SVG chart are rendered here, so the
/// daemon stays small and the chart is drawn from exactly the numbers released.
public struct StatsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show aggregate statistics (admins and statisticians): small cells suppressed, optionally noisy.",
        discussion: """
            Rows are months; without --by-clinic one table per category with a column per metric, \
            with --by-clinic one table per metric and category with a column per clinic. \
            Cells from 1 to k-1 show as <k, and x hides a cell that would otherwise reveal one. \
            Unique persons are counted only for closed months. --format svg draws monthly \
            enrolments and completions as a chart that opens in a browser.
            """)

    public enum Format: String, ExpressibleByArgument, CaseIterable { case table, csv, json, svg }

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "First month, YYYY-MM (default: eleven months before --to).") var from: String?
    @Option(help: "Last month, YYYY-MM (default: the current month).") var to: String?
    @Flag(help: "Break the counts down by clinic.") var byClinic = false
    @Option(help: "Only this category.") var category: String?
    @Option(help: "table (default), csv, json or svg.") var format: Format?
    @Option(help: "Write to this file instead of standard output.") var output: String?
    public init() {}

    public func validate() throws {
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, Month(value) == nil { throw ValidationError("\(name) must be a month written YYYY-MM") }
        }
        if let category, category.isEmpty { throw ValidationError("--category must not be empty") }
    }

    public func run() throws {
        let last = to.flatMap { Month($0) } ?? Day(ClinicDates.today)!.month
        var first = from.flatMap { Month($0) } ?? last
        if from == nil { for _ in 0..<11 { first = first.previous } }
        var items = [URLQueryItem(name: "from", value: first.description), URLQueryItem(name: "to", value: last.description)]
        if byClinic { items.append(URLQueryItem(name: "byClinic", value: "true")) }
        if let category { items.append(URLQueryItem(name: "category", value: category)) }
        var components = URLComponents()
        components.path = "/v1/stats"
        components.queryItems = items
        let client = ClinicClient(options: connection)
        let (reply, raw) = try client.call("GET", components.string ?? "/v1/stats", as: StatsResponse.self)
        let chosen = format ?? (connection.json ? .json : .table)
        let text: String = switch chosen {
        case .json: String(decoding: raw, as: UTF8.self) + "\n"
        case .csv: StatsRendering.csv(reply)
        case .svg: StatsChart.svg(reply)
        case .table: StatsRendering.text(reply) + "\n"
        }
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: Data(text.utf8)) else {
                throw ClinicFailure(exitCode: 1, description: "could not write \(output); check the directory exists and is writable")
            }
        } else {
            print(text, terminator: "")
        }
    }
}
