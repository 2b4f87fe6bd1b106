import Foundation
import RegistryConfig
import Hummingbird
import NIOCore
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import RegistryStats
import RegistryStore

/// `GET /v1/stats` (docs/PROTOCOL.md §Statistics): admins and statisticians only.
extension RegistryApp {
    func statistics(_ request: Request) async throws -> Response {
        let today = clock.today
        let parameters = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
        let query = try StatsQuery.parse(parameters, currentMonth: today.month)
        let config = self.config
        let settings = config.statistics
        // Months that have ended are closed for unique persons before anything is read.
        do { _ = try await store.foldUniquePersons(before: today.month) } catch { throw DomainError.storage(error) }

        let body: [UInt8]
        if settings.privacy {
            if let stored = try await storage { () async throws(StorageError) in try await self.store.storedRelease(query: query.releaseKey) } {
                body = stored.body
            } else {
                let response = try await build(query, today: today, config: config,
                                               privacy: StatsBuilder.Privacy(epsilonMicro: settings.epsilonMicro, random: SodiumUniform()))
                let fresh = StoredRelease(query: query.releaseKey, releasedOn: today, epsilonMicro: settings.epsilonMicro,
                                          body: Array(try JSONBodies.encoder.encode(response)))
                // A concurrent identical query may have stored first: its release is returned.
                body = try await storage { () async throws(StorageError) in
                    try await self.store.storeRelease(fresh, months: query.from.months(through: query.to), budgetMicro: settings.monthlyBudgetMicro)
                }.body
            }
        } else {
            body = Array(try JSONBodies.encoder.encode(try await build(query, today: today, config: config, privacy: nil)))
        }

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

    private func build(_ query: StatsQuery, today: Day, config: DaemonConfig, privacy: StatsBuilder.Privacy?) async throws -> StatsResponse {
        let counters = try await storage { () async throws(StorageError) in try await self.store.counters(from: query.from, to: query.to) }
        let unique = try await storage { () async throws(StorageError) in try await self.store.uniquePersons(from: query.from, to: query.to) }
        let builder = StatsBuilder(k: config.statistics.k, categories: Array(config.rules.categories.keys),
                                   clinics: config.clinics.map(\.id.rawValue))
        return try builder.build(query, counters: counters, uniquePersons: unique, today: today, privacy: privacy)
    }

    private func storage<T>(_ body: () async throws(StorageError) -> T) async throws -> T {
        do { return try await body() } catch { throw DomainError.storage(error) }
    }
}

/// The daemon's randomness for noise: libsodium's `randombytes_uniform`.
struct SodiumUniform: UniformSource {
    mutating func uniform(below bound: UInt32) throws -> UInt32 { try Sodium.uniform(below: bound) }
}
