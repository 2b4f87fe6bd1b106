import Foundation
import Hummingbird
import NIOCore
import RegistryConfig
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import RegistryStats

/// `GET /v1/stats` (docs/PROTOCOL.md §Statistics): admins and statisticians only.
extension RegistryApp {
    func statistics(_ request: Request) async throws -> Response {
        let today = clock.today
        let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
        let query = try StatsQuery.parse(parameters, currentMonth: today.month)
        let body = try await StatisticsRelease.body(
            for: query, today: today, settings: config.statisticsReleaseSettings,
            storage: store, random: SodiumUniform())
        var headers = HTTPFields()
        headers[.cacheControl] = "no-store"
        switch query.format {
        case .json:
            headers[.contentType] = "application/json"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
        case .csv:
            let response = try JSONDecoder().decode(StatsResponse.self, from: Data(body))
            headers[.contentType] = "text/csv; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: StatsRendering.csv(response))))
        }
    }

    /// `GET /v1/stats/privacy`: the differential-privacy settings in force, their history, and
    /// each month's spent budget and cap (docs/PROTOCOL.md §Statistics).
    func privacyStatus() async throws -> Response {
        let settings = config.statistics.privacySettings
        let history: [PrivacySettingsChange]
        let budgets: [PrivacyBudgetMonth]
        do {
            history = try await store.privacySettingsHistory()
            budgets = try await store.privacyBudgets()
        } catch { throw DomainError.storage(error) }
        return try JSONBodies.response(StatsPrivacyStatus(current: settings, today: clock.today, history: history, budgets: budgets))
    }

    /// Records the differential-privacy settings when they differ from the last recorded ones,
    /// and audits the change (`privacy-settings`), at start and at each reload. The first
    /// settings a registry records count as a change only when they are not the defaults
    /// (`PrivacySettings.isAuditedChange`). The audit entry comes first: a crash in between
    /// audits it again at the next start, never not at all.
    public func recordPrivacyIfChanged(actor: String) async {
        let settings = config.statistics.privacySettings
        do {
            let history = try await store.privacySettingsHistory()
            guard history.last?.settings != settings else { return }
            if settings.isAuditedChange(after: history.last?.settings, defaults: DaemonConfig.Statistics.defaults.privacySettings) {
                try await store.appendAudit(
                    AuditEvent(actor: actor, action: "privacy-settings", result: settings.summary, subjectReference: nil))
            }
            _ = try await store.recordPrivacySettings(settings, on: clock.today)
            logger.notice("differential-privacy settings recorded in the audit log", metadata: ["settings": "\(settings.summary)"])
        } catch {
            logger.error("could not record the differential-privacy settings: \(error)")
        }
    }
}

extension DaemonConfig {
    /// What a statistics release depends on from the configuration.
    var statisticsReleaseSettings: StatisticsRelease.Settings {
        StatisticsRelease.Settings(
            k: statistics.k, categories: Array(rules.categories.keys), clinics: clinics.map(\.id.rawValue),
            privacy: statistics.privacySettings)
    }
}

/// The daemon's randomness for noise: libsodium's `randombytes_uniform`.
struct SodiumUniform: UniformSource {
    mutating func uniform(below bound: UInt32) throws -> UInt32 { try Sodium.uniform(below: bound) }
}
