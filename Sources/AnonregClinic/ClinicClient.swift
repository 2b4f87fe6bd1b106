import ArgumentParser
import Foundation
import RegistryProtocol
import RegistryText

/// `--lang`: the language of the human output (docs/TRANSLATING.md).
public struct LanguageOptions: ParsableArguments {
    @Option(name: .customLong("lang"), help: "Language of the human output: ru or en (default: from LC_ALL, LC_MESSAGES or LANG, else en).")
    public var lang: String?

    public init() {}

    public func validate() throws {
        if let lang, Language(rawValue: lang) == nil { throw ValidationError("--lang must be ru or en") }
    }

    public var language: Language {
        lang.flatMap(Language.init(rawValue:)) ?? Language.fromEnvironment(ProcessInfo.processInfo.environment)
    }
}

/// Options every command that talks to the daemon takes.
public struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "Path of anonregd's socket (default: $ANONREG_SOCKET, then /run/anonreg/anonreg.sock).")
    public var socket: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    public var json = false

    @OptionGroup public var languageOptions: LanguageOptions

    public init() {}

    /// The language of the human output, and of the plain-words fields anonregd answers with.
    public var language: Language { languageOptions.language }

    public var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["ANONREG_SOCKET"].flatMap { $0.isEmpty ? nil : $0 } ?? "/run/anonreg/anonreg.sock"
    }
}

/// A failure with its documented exit code: 0 ok, 1 failed, 2 usage, 3 refused by policy,
/// 4 daemon unreachable.
public struct ClinicFailure: Error, CustomStringConvertible {
    public var exitCode: Int32
    public var description: String

    public init(exitCode: Int32, description: String) {
        self.exitCode = exitCode
        self.description = description
    }
}

/// Calls anonregd and turns its answers into values or `ClinicFailure`s.
public struct ClinicClient {
    let options: ConnectionOptions

    public init(options: ConnectionOptions) { self.options = options }

    public func call<Response: Decodable>(_ method: String, _ path: String, body: (any Encodable)? = nil, as type: Response.Type) throws
        -> (Response, Data)
    {
        let client = UnixHTTPClient(socketPath: options.socketPath, language: options.language.rawValue)
        let payload = try body.map { try JSONEncoder().encode($0) }
        let reply: UnixHTTPClient.Response
        do { reply = try client.send(method, path, json: payload) } catch let failure as UnixHTTPClient.Failure {
            throw failure.clinicFailure(options.language)
        }
        guard (200..<300).contains(reply.status) else { throw Self.failure(reply, options.language) }
        do { return (try JSONDecoder().decode(Response.self, from: reply.body), reply.body) } catch {
            throw ClinicFailure(exitCode: 1, description: "anonregd's answer could not be read (\(error))")
        }
    }

    /// The documented exit code and message for an error answer: 2 for malformed requests,
    /// 3 for policy refusals, 1 otherwise. anonregd's messages are English (error bodies are the
    /// same in every language, docs/PROTOCOL.md §4 Languages): in English the CLI shows them as
    /// they are; in another language it says the catalogue's `error.<code>`, followed by the
    /// daemon's message for codes whose answer carries details (which field, which categories).
    static func failure(_ reply: UnixHTTPClient.Response, _ language: Language = .en) -> ClinicFailure {
        let error = (try? JSONDecoder().decode(ErrorBody.self, from: reply.body))?.error
        let code = error?.code ?? "http_\(reply.status)"
        let daemonMessage = error?.message ?? "anonregd answered \(reply.status)"
        let message: String
        if language != .en, Catalogue.table(language)["error.\(code)"] != nil {
            let text = Catalogue.text("error.\(code)", language)
            message =
                detailedErrors.contains(code)
                ? Catalogue.text("error.withDetail", language, ["text": text, "detail": daemonMessage]) : text
        } else {
            message = daemonMessage
        }
        let exit: Int32 =
            switch reply.status {
            case 400, 413, 415: 2
            case 403, 409, 422, 429: 3
            default: 1
            }
        return ClinicFailure(exitCode: exit, description: "\(message) [\(code), HTTP \(reply.status)]")
    }

    /// Error codes whose message says more than the code: which field, value or categories.
    static let detailedErrors: Set<String> = [
        "unknown_field", "missing_field", "wrong_type", "invalid_date", "invalid_month", "invalid_value", "invalid_consent",
        "unknown_category", "unknown_substance", "unknown_treatment", "invalid_relapse_action", "relapse_action_required",
        "body_too_large", "internal_error", "forbidden", "keyring_unchanged", "kek_transition_refused",
    ]

    /// A transport failure in the chosen language.
    static func describe(_ failure: UnixHTTPClient.Failure, _ language: Language) -> String {
        switch failure {
        case .cannotConnect(let path, _, true): Catalogue.text("cli.socketDenied", language, ["socket": path])
        case .cannotConnect(let path, let reason, false):
            Catalogue.text("cli.socketUnreachable", language, ["socket": path, "reason": reason])
        default: failure.description
        }
    }

    /// A POST whose 2xx answer is a large binary body, streamed into `fd`; returns the bytes written.
    public func download(_ path: String, to fd: Int32, timeout: Int = 60) throws -> Int64 {
        let result: (response: UnixHTTPClient.Response, written: Int64)
        do { result = try UnixHTTPClient(socketPath: options.socketPath).download("POST", path, to: fd, timeout: timeout) } catch let
            failure as UnixHTTPClient.Failure
        {
            throw failure.clinicFailure(options.language)
        }
        guard (200..<300).contains(result.response.status) else { throw Self.failure(result.response, options.language) }
        return result.written
    }

    /// A download whose request is sent now and whose answer is read later, possibly after the
    /// process switched users (`UnixHTTPClient.PendingDownload`).
    public struct PendingDownload: ~Copyable {
        fileprivate var pending: UnixHTTPClient.PendingDownload

        /// Streams the 2xx answer into `fd`; returns the bytes written.
        public consuming func receive(to fd: Int32) throws -> Int64 {
            let result: (response: UnixHTTPClient.Response, written: Int64)
            do { result = try pending.receive(to: fd) } catch let failure as UnixHTTPClient.Failure {
                throw ClinicClient.downloadFailure(failure)
            }
            guard (200..<300).contains(result.response.status) else { throw ClinicClient.failure(result.response) }
            return result.written
        }
    }

    /// Sends the POST of `download` now; the answer is read by `PendingDownload.receive`.
    public func startDownload(_ path: String, timeout: Int = 60) throws -> PendingDownload {
        do {
            return PendingDownload(
                pending: try UnixHTTPClient(socketPath: options.socketPath).startDownload("POST", path, timeout: timeout))
        } catch let failure as UnixHTTPClient.Failure { throw Self.downloadFailure(failure) }
    }

    static func downloadFailure(_ failure: UnixHTTPClient.Failure) -> ClinicFailure {
        if case .output = failure { return ClinicFailure(exitCode: 1, description: failure.description) }
        return ClinicFailure(exitCode: 4, description: failure.description)
    }

    /// A GET whose answer is not JSON (JSON lines, metrics): the raw body.
    public func raw(_ path: String) throws -> Data {
        let reply: UnixHTTPClient.Response
        do { reply = try UnixHTTPClient(socketPath: options.socketPath).send("GET", path) } catch let failure as UnixHTTPClient.Failure {
            throw failure.clinicFailure(options.language)
        }
        guard (200..<300).contains(reply.status) else { throw Self.failure(reply, options.language) }
        return reply.body
    }

    /// Prints the raw JSON (with --json) or the human rendering.
    public func output(_ raw: Data, human: () -> String) {
        if options.json {
            print(String(decoding: raw, as: UTF8.self))
        } else {
            print(human())
        }
    }
}

/// Aligned two-column tables for humans.
enum Table {
    static func render(_ rows: [(String, String)]) -> String {
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n")
    }

    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)).joined(
            separator: "\n")
    }

    /// A case's monitoring as label/value rows; `reason` comes from anonregd in the same language.
    static func monitoring(_ m: MonitoringWire, _ language: Language) -> [(String, String)] {
        func label(_ key: String) -> String { Catalogue.text("label.\(key)", language) }
        func date(_ day: Day?) -> String { day.map { Catalogue.date($0, language) } ?? "-" }
        return [
            (label("status"), status(m.status, language)), (label("category"), m.category), (label("enrolledOn"), date(m.enrolledOn)),
            (label("lastCheckup"), date(m.lastCheckup)), (label("nextCheckupDue"), date(m.nextCheckupDue)),
            (label("remissionSince"), date(m.remissionSince)), (label("earliestEnd"), date(m.earliestEnd)),
            (label("endsAtTheLatest"), date(m.retentionCapOn)), (label("reason"), m.reason),
        ]
    }

    /// A status word (`active`, `due`, ...) in the chosen language; an unknown one as it is.
    static func status(_ word: String, _ language: Language) -> String {
        Catalogue.table(language)["status.\(word)"] != nil ? Catalogue.text("status.\(word)", language) : word
    }
}

extension UnixHTTPClient.Failure {
    /// Exit codes: 1 for a local output error, 3 for a socket the CLI refuses to trust (a policy
    /// refusal of the CLI's own), 4 for a daemon it cannot reach or understand. The message is in
    /// the chosen language where the catalogue has it.
    func clinicFailure(_ language: Language) -> ClinicFailure {
        switch self {
        case .output: ClinicFailure(exitCode: 1, description: description)
        case .untrustedSocket: ClinicFailure(exitCode: 3, description: description)
        case .unreachable, .cannotConnect, .protocolError: ClinicFailure(exitCode: 4, description: ClinicClient.describe(self, language))
        }
    }
}
