import AnonregClinic
import ArgumentParser
import Dispatch
import Foundation
import RegistryConfig
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
import RegistryStats
import RegistryStore

/// `anonreg stats`: aggregate statistics with small cells suppressed, for admins and
/// statisticians. The daemon sends JSON; tables, CSV and the SVG chart are rendered here, so the
/// daemon stays small and the chart is drawn from exactly the numbers released.
///
/// Statistics never reach a peer that acts as a clinic (DESIGN invariant 2), so the uid that
/// `anonreg init` makes admin *and* clinic `local` gets them offline instead: `--state-dir` on a
/// stopped state directory, through the same release code as the daemon (docs/OPERATIONS.md
/// §Statistics).
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

            With differential privacy on, the default range ends with the last closed month \
            (a release charges every month it covers, and the open month's figures still \
            change), and the table shows the settings, their recorded changes and each month's \
            spent budget.

            --state-dir works offline on a stopped state directory (the admin's way when its uid \
            is also a clinic, as `anonreg init` sets it up): the release is built, noised, \
            stored, charged and audited exactly as the daemon does it.
            """)

    public enum Format: String, ExpressibleByArgument, CaseIterable { case table, csv, json, svg }

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "First month, YYYY-MM (default: eleven months before --to).") var from: String?
    @Option(help: "Last month, YYYY-MM (default: the current month; the last closed month with differential privacy on).") var to: String?
    @Flag(help: "Break the counts down by clinic.") var byClinic = false
    @Option(help: "Only this category.") var category: String?
    @Option(help: "table (default), csv, json or svg.") var format: Format?
    @Option(help: "Write to this file instead of standard output.") var output: String?
    @Option(help: "Work offline on this stopped state directory instead of asking the daemon.") var stateDir: String?
    @Option(help: "With --state-dir: the configuration (default: STATE_DIR/anonreg.toml).") var config: String?
    @Option(help: "With --state-dir and a passphrase-sealed keyring: file holding its passphrase (0600).") var passphraseFile: String?
    public init() {}

    public func validate() throws {
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, Month(value) == nil { throw ValidationError("\(name) must be a month written YYYY-MM") }
        }
        if let category, category.isEmpty { throw ValidationError("--category must not be empty") }
        if stateDir == nil && (config != nil || passphraseFile != nil) {
            throw ValidationError("--config and --passphrase-file go with --state-dir")
        }
    }

    /// Where the figures come from: the daemon, or the state directory itself.
    protocol Source {
        func privacy() throws -> StatsPrivacyStatus
        func release(_ path: String, _ parameters: [(String, String)]) throws -> Data
    }

    public func run() throws {
        let source: any Source =
            if let stateDir { try OfflineSource(stateDir: stateDir, config: config, passphraseFile: passphraseFile) } else {
                OnlineSource(client: ClinicClient(options: connection))
            }
        let privacy = try source.privacy()
        // With noise on, a release charges each month it covers and the open month's counts
        // still change: by default ask only for closed months, so no budget goes to it.
        let last = to.flatMap { Month($0) } ?? (privacy.current.privacy ? privacy.closedThrough : privacy.closedThrough.next)
        var first = from.flatMap { Month($0) } ?? last
        if from == nil { for _ in 0..<11 { first = first.previous } }
        if from != nil && to == nil && first > last {
            throw ClinicFailure(
                exitCode: 2,
                description:
                    "--from \(first) is after the default --to \(last) (the last closed month, differential privacy being on); give --to")
        }
        var items = [URLQueryItem(name: "from", value: first.description), URLQueryItem(name: "to", value: last.description)]
        if byClinic { items.append(URLQueryItem(name: "byClinic", value: "true")) }
        if let category { items.append(URLQueryItem(name: "category", value: category)) }
        var components = URLComponents()
        components.path = "/v1/stats"
        components.queryItems = items
        let raw = try source.release(components.string ?? "/v1/stats", items.map { ($0.name, $0.value ?? "") })
        let reply: StatsResponse
        do { reply = try JSONDecoder().decode(StatsResponse.self, from: raw) } catch {
            throw ClinicFailure(exitCode: 1, description: "the statistics could not be read (\(error))")
        }
        let chosen = format ?? (connection.json ? .json : .table)
        let text: String =
            switch chosen {
            case .json: String(decoding: raw, as: UTF8.self) + "\n"
            case .csv: StatsRendering.csv(reply)
            case .svg: StatsChart.svg(reply)
            case .table: StatsRendering.text(reply) + "\n" + Self.privacySection(privacy, from: first, to: last)
            }
        if let output {
            guard FileManager.default.createFile(atPath: output, contents: Data(text.utf8)) else {
                throw ClinicFailure(exitCode: 1, description: "could not write \(output); check the directory exists and is writable")
            }
        } else {
            print(text, terminator: "")
        }
    }

    /// The settings in force, the months' spent budgets in the range, and every recorded change.
    static func privacySection(_ status: StatsPrivacyStatus, from: Month, to: Month) -> String {
        let current = status.current
        var lines = [
            "",
            current.privacy
                ? "Differential privacy: on (ε \(current.epsilon) per release, monthly budget \(current.monthlyBudget))"
                : "Differential privacy: off",
        ]
        let months = status.months.filter { $0.month >= from && $0.month <= to }
        if !months.isEmpty {
            lines.append(
                "Budget spent: " + months.map { "\($0.month) \($0.spent) of \($0.cap ?? current.monthlyBudget)" }.joined(separator: ", "))
        }
        if status.changes.count > 1 || status.changes.first.map({ $0.settings != current }) == true {
            lines.append("Settings recorded (each also in the audit log as privacy-settings):")
            for change in status.changes {
                let s = change.settings
                lines.append(
                    "  \(change.recordedOn)  privacy \(s.privacy ? "on" : "off"), epsilon \(s.epsilon), monthly budget \(s.monthlyBudget)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    struct OnlineSource: Source {
        let client: ClinicClient
        func privacy() throws -> StatsPrivacyStatus { try client.call("GET", "/v1/stats/privacy", as: StatsPrivacyStatus.self).0 }
        func release(_ path: String, _ parameters: [(String, String)]) throws -> Data {
            try client.call("GET", path, as: StatsResponse.self).1
        }
    }

    /// The daemon's release code on the stopped state directory: the same fold, noise, stored
    /// release, budget and audit entry (actor `admin uid UID offline`).
    final class OfflineSource: Source, @unchecked Sendable {
        let config: DaemonConfig
        let store: SQLiteRegistryStore
        let actor = "admin uid \(geteuid()) offline"
        let today = SystemDayClock().today

        init(stateDir: String, config configPath: String?, passphraseFile: String?) throws {
            try OfflineAccess.requireSQLite(
                config: configPath, stateDirectory: stateDir, command: "anonreg stats --state-dir",
                instead: "ask a running node: `anonreg stats` without --state-dir")
            let path = configPath ?? stateDir + "/anonreg.toml"
            do { config = try DaemonConfig.load(path: path) } catch { throw CLIFailure.usage("configuration \(path): \(error)") }
            guard !DatabaseInUse.check(config.databasePath) else {
                throw CLIFailure.refused(
                    "\(config.databasePath) is open in a running anonregd; ask it with `anonreg stats` as an admin or statistician uid that is no clinic, or stop it first"
                )
            }
            let passphrase = try PassphraseInput.forKeyring(directory: config.keysDirectory, file: passphraseFile)
            let keyring: Keyring
            do { keyring = try Keyring.load(from: KeyringSource(directory: config.keysDirectory), passphrase: passphrase) } catch {
                throw CLIFailure.failed("keyring: \(error)")
            }
            do {
                store = try SQLiteRegistryStore(
                    path: config.databasePath, keyring: keyring, auditCheckpointEvery: config.audit.checkpointEvery)
            } catch {
                throw CLIFailure.failed("database: \(error)")
            }
            // The settings of this release are recorded and audited as a daemon start does.
            let settings = config.statistics.privacySettings
            let (store, actor, today) = (store, actor, today)
            try Blocking.run { () async throws in
                let history = try await store.privacySettingsHistory()
                if history.last?.settings != settings {
                    if settings.isAuditedChange(after: history.last?.settings, defaults: DaemonConfig.Statistics.defaults.privacySettings) {
                        try await store.appendAudit(
                            AuditEvent(actor: actor, action: "privacy-settings", result: settings.summary, subjectReference: nil))
                    }
                    _ = try await store.recordPrivacySettings(settings, on: today)
                }
            }
        }

        deinit { try? store.close() }

        func privacy() throws -> StatsPrivacyStatus {
            let (store, settings, today) = (store, config.statistics.privacySettings, today)
            return try Blocking.run { () async throws in
                StatsPrivacyStatus(
                    current: settings, today: today, history: try await store.privacySettingsHistory(),
                    budgets: try await store.privacyBudgets())
            }
        }

        func release(_ path: String, _ parameters: [(String, String)]) throws -> Data {
            let query: StatsQuery
            do { query = try StatsQuery.parse(parameters, currentMonth: today.month) } catch {
                throw ClinicFailure(exitCode: 2, description: "\(error.message) [\(error.code)]")
            }
            let (store, settings, today, actor) = (
                store,
                StatisticsRelease.Settings(
                    k: config.statistics.k, categories: Array(config.rules.categories.keys), clinics: config.clinics.map(\.id.rawValue),
                    privacy: config.statistics.privacySettings), today, actor
            )
            return try Blocking.run { () async throws in
                // Audited like the route: the entry is written before the figures are shown.
                do {
                    let body = try await StatisticsRelease.body(
                        for: query, today: today, settings: settings, storage: store, random: SodiumUniform())
                    try await store.appendAudit(AuditEvent(actor: actor, action: "read-statistics", result: "ok", subjectReference: nil))
                    return Data(body)
                } catch let error as DomainError {
                    try? await store.appendAudit(
                        AuditEvent(actor: actor, action: "read-statistics", result: error.code, subjectReference: nil))
                    throw ClinicFailure(exitCode: error.kind == .refused ? 3 : 1, description: "\(error.message) [\(error.code)]")
                }
            }
        }
    }
}

/// The noise's randomness: libsodium's `randombytes_uniform`, as in the daemon.
struct SodiumUniform: UniformSource {
    mutating func uniform(below bound: UInt32) throws -> UInt32 { try Sodium.uniform(below: bound) }
}

/// Runs async store work from a synchronous command and waits for it.
enum Blocking {
    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<T, any Error>?
        Task {
            do { result = .success(try await body()) } catch { result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try result!.get()
    }
}
