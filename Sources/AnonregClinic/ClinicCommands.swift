import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryProtocol
import RegistryText

/// Wire bodies the CLI sends (the daemon's request types are decode-only).
private struct ConsentBody: Encodable {
    var form: String
    var givenOn: String
    var method: String
    var scope: [String]
}
private struct EnrolBody: Encodable {
    var consent: ConsentBody
    var category: String
    var enrolledOn: String
    var linkage: String?
}
private struct CodeBody: Encodable { var code: String }
private struct CheckupBody: Encodable {
    var on: String
    var outcome: String
    var substances: [String]
    var treatment: [String]
    var note: String
    var correction: Bool
    var relapseAction: String?
}
private struct Empty: Encodable {}

func dayArgument(_ text: String, _ name: String, _ language: Language) throws -> String {
    guard Day(text) != nil else { throw ValidationError(Catalogue.text("cli.badDate", language, ["option": name])) }
    return text
}

public struct EnrolCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "enrol", abstract: "Enrol a subject with its consent; prints the case handle and the patient code (shown once).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Category from the registry's config, e.g. dependence or harmful-use.") var category: String
    @Option(help: "Enrolment date, YYYY-MM-DD (default: today).") var enrolledOn: String?
    @Option(help: "Id of the signed consent form.") var consentForm: String
    @Option(help: "Date the consent was given, YYYY-MM-DD (default: the enrolment date).") var consentGiven: String?
    @Option(help: "written or electronic-signature.") var consentMethod: String = "written"
    @Option(help: "Comma-separated consent scope: monitoring[,statistics].") var scope: String = "monitoring,statistics"
    @Option(help: "128 hex digits from `anonreg linkage` (optional).") var linkage: String?
    @OptionGroup var card: CardOptions
    public init() {}

    public func run() throws {
        let enrolled = try dayArgument(enrolledOn ?? ClinicDates.today, "--enrolled-on", connection.language)
        let body = EnrolBody(
            consent: ConsentBody(
                form: consentForm, givenOn: try dayArgument(consentGiven ?? enrolled, "--consent-given", connection.language),
                method: consentMethod, scope: scope.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }),
            category: category, enrolledOn: enrolled, linkage: linkage)
        let language = connection.language
        let cardFile = try card.prepare(language: language)
        let client = ClinicClient(options: connection)
        let reply: EnrolResponse
        let raw: Data
        do { (reply, raw) = try client.call("POST", "/v1/subjects", body: body, as: EnrolResponse.self) } catch {
            cardFile?.discard()
            throw error
        }
        client.output(raw) {
            Table.render(
                [(Catalogue.text("label.case", language), reply.case), (Catalogue.text("label.patientCode", language), reply.code)]
                    + Table.monitoring(reply.monitoring, language))
                + "\n\n" + Catalogue.text("enrol.giveCode", language)
        }
        try card.finish(cardFile, code: reply.code, language: language)
    }
}

public struct StatusCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a case's monitoring status.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The case handle (case_…).") var caseHandle: String
    public init() {}

    public func run() throws {
        let client = ClinicClient(options: connection)
        let (reply, raw) = try client.call("GET", "/v1/cases/\(caseHandle)", as: CaseStatusResponse.self)
        client.output(raw) {
            Table.render(
                [(Catalogue.text("label.case", connection.language), reply.case)] + Table.monitoring(reply.monitoring, connection.language))
        }
    }
}

public struct CheckupCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "checkup", abstract: "Record a check-up for a case.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The case handle (case_…).") var caseHandle: String
    @Option(help: "Check-up date, YYYY-MM-DD (default: today).") var on: String?
    @Option(help: "remission, relapse, missed or other.") var outcome: String
    @Option(name: .customLong("substance"), help: "A detected substance (repeatable).") var substances: [String] = []
    @Option(name: .customLong("treatment"), help: "A treatment given (repeatable).") var treatments: [String] = []
    @Option(help: "Clinician note (sealed; never logged). `-` reads it from standard input, which keeps it out of the process list.")
    var note: String = ""
    @Flag(help: "Mark a check-up dated before the latest one as a correction.") var correction = false
    @Option(help: "For relapses when the policy leaves it to the clinician: restart, extend or continue.") var relapseAction: String?
    public init() {}

    public func run() throws {
        let text = note == "-" ? (String(data: FileHandle.standardInput.readDataToEndOfFile(), encoding: .utf8) ?? "") : note
        let body = CheckupBody(
            on: try dayArgument(on ?? ClinicDates.today, "--on", connection.language), outcome: outcome, substances: substances,
            treatment: treatments, note: text.trimmingCharacters(in: .newlines), correction: correction, relapseAction: relapseAction)
        let client = ClinicClient(options: connection)
        let (reply, raw) = try client.call("POST", "/v1/cases/\(caseHandle)/checkups", body: body, as: CheckupResponse.self)
        let language = connection.language
        client.output(raw) {
            Table.render(
                [
                    (
                        Catalogue.text("label.recorded", language),
                        Catalogue.text(
                            "checkup.recorded", language,
                            [
                                "on": Catalogue.date(reply.checkup.on, language),
                                "outcome": Catalogue.text("outcome.\(reply.checkup.outcome.rawValue)", language),
                            ])
                    )
                ]
                    + Table.monitoring(reply.monitoring, language))
        }
    }
}

public struct DueCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "due", abstract: "List this clinic's cases due for a check-up.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "List cases due before this date, YYYY-MM-DD (default: tomorrow).") var before: String?
    public init() {}

    public func run() throws {
        var path = "/v1/due"
        if let before { path += "?before=" + (try dayArgument(before, "--before", connection.language)) }
        let client = ClinicClient(options: connection)
        let (reply, raw) = try client.call("GET", path, as: DueResponse.self)
        let language = connection.language
        client.output(raw) {
            reply.cases.isEmpty
                ? Catalogue.text("due.none", language, ["before": Catalogue.date(reply.before, language)])
                : Table.render(
                    header: ["due.case", "due.due", "due.status"].map { Catalogue.text($0, language) },
                    rows: reply.cases.map { [$0.case, Catalogue.date($0.nextCheckupDue, language), Table.status($0.status, language)] })
        }
    }
}

public struct LinkCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "link", abstract: "Link a patient to this clinic with the patient's code, so the history carries over.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The patient code. Omit it to type it on standard input, which keeps it out of the process list and shell history.")
    var code: String?
    public init() {}

    public func run() throws {
        let client = ClinicClient(options: connection)
        let body = CodeBody(code: try CodeInput.read(code, language: connection.language))
        let (reply, raw) = try client.call("POST", "/v1/cases", body: body, as: CaseResponse.self)
        client.output(raw) { Table.render([(Catalogue.text("label.case", connection.language), reply.case)]) }
    }
}

public struct WithdrawCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "withdraw", abstract: "Withdraw consent: erase the subject now, by case handle or by patient code.")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .customLong("case"), help: "The case handle.") var caseHandle: String?
    @Option(help: "The patient code; `-` reads it from standard input (keeps it out of the process list).") var code: String?
    public init() {}

    public func validate() throws {
        guard (caseHandle == nil) != (code == nil) else { throw ValidationError("give exactly one of --case and --code") }
    }

    public func run() throws {
        let client = ClinicClient(options: connection)
        let (reply, raw): (WithdrawResponse, Data) =
            if let caseHandle {
                try client.call("POST", "/v1/cases/\(caseHandle)/withdraw", body: Empty(), as: WithdrawResponse.self)
            } else {
                try client.call(
                    "POST", "/v1/withdraw",
                    body: CodeBody(code: try CodeInput.read(code == "-" ? nil : code, language: connection.language)),
                    as: WithdrawResponse.self)
            }
        client.output(raw) {
            Catalogue.text(reply.status == "erased" ? "withdraw.done" : "withdraw.other", connection.language, ["status": reply.status])
        }
    }
}

public struct SelfCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "self", abstract: "Show everything the registry holds about the patient whose code is given, in plain words.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "The patient code. Omit it to type it on standard input, which keeps it out of the process list and shell history.")
    var code: String?
    public init() {}

    public func run() throws {
        let client = ClinicClient(options: connection)
        let language = connection.language
        let (reply, raw) = try client.call(
            "POST", "/v1/self", body: CodeBody(code: try CodeInput.read(code, language: language)), as: SelfResponse.self)
        client.output(raw) { Self.text(reply, language) }
    }

    /// The summary, then who read or changed the record and when (the access log the JSON
    /// holds); the summary and the log's sentences come from anonregd in the asked language.
    static func text(_ reply: SelfResponse, _ language: Language) -> String {
        (reply.summary + ["", Catalogue.text("self.accessLogHeading", language)]
            + (reply.accessLog.isEmpty
                ? [Catalogue.text("self.accessLogEmpty", language)] : reply.accessLog.map { "  \($0.at)  \($0.text)" }))
            .joined(separator: "\n")
    }
}

/// Admin over the socket: run the sweeper now.
public struct SweepCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run the sweeper now (admin): erase subjects past their retention cap, completion grace or inactivity.")
    @OptionGroup var connection: ConnectionOptions
    public init() {}

    public func run() throws {
        let client = ClinicClient(options: connection)
        let (r, raw) = try client.call("POST", "/v1/admin/sweep", body: Empty(), as: SweepResponseWire.self)
        let language = connection.language
        client.output(raw) { Self.render(r, language) }
    }

    /// The sweep's numbers, one line each, and a warning when integrity failures were too many to
    /// act on (docs/PROTOCOL.md §POST /v1/admin/sweep).
    static func render(_ r: SweepResponseWire, _ language: Language) -> String {
        let rows: [(String, Int)] = [
            ("sweep.reviewed", r.reviewed), ("sweep.kept", r.kept), ("sweep.erasedCompleted", r.erasedCompleted),
            ("sweep.erasedCap", r.erasedCap), ("sweep.erasedInactive", r.erasedInactive),
            ("sweep.erasedIntegrity", r.erasedIntegrity), ("sweep.caseLinksRemoved", r.caseLinksRemoved),
            ("sweep.integritySuspended", r.integritySuspended), ("sweep.failed", r.failed),
        ]
        let table = Table.render(rows.map { (Catalogue.text($0.0, language), "\($0.1)") })
        guard r.integritySuspended > 0 else { return table }
        return table + "\n\n" + Catalogue.text("sweep.suspendedWarning", language, ["count": "\(r.integritySuspended)"])
    }
}

public struct HealthCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "health", abstract: "Check that anonregd answers.")
    @OptionGroup var connection: ConnectionOptions
    public init() {}

    public func run() throws {
        let client = ClinicClient(options: connection)
        let (reply, raw) = try client.call("GET", "/v1/health", as: HealthResponse.self)
        client.output(raw) { "anonregd \(reply.version): \(reply.status)" }
    }
}

enum ClinicDates {
    static var today: String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return Day(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday))!.description
    }
}
