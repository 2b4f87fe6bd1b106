import AnonregTestSupport
import Foundation
import RegistryPostgres
import Testing

/// TCP is TLS with verify-full (docs/STORAGE.md §PostgreSQL): the server's certificate must chain
/// to the configured CA and name the host connected to. The cluster accepts TCP only as
/// `hostssl`, so a connection that opens was encrypted.
struct PostgresTLSTests {
    static func config(_ cluster: ThrowawayPostgres, host: String = "localhost", caFile: String) -> PostgresConfig {
        PostgresConfig(
            endpoint: .tcp(host: host, port: cluster.port, caFile: caFile), database: cluster.database, user: cluster.user,
            passwordFile: cluster.passwordFile, connectTimeout: PostgresBackendTests.generousTimeout)
    }

    /// The TLS reason of an `unreachable` refusal, or nil (with an issue recorded).
    static func tlsRefusal(_ config: PostgresConfig) async -> String? {
        do {
            let store = try await PostgresStore.open(config)
            await store.close()
            Issue.record("expected the server's certificate to be refused")
        } catch {
            if case .unreachable(_, let reason) = error, reason.hasPrefix("TLS") { return reason }
            Issue.record("expected unreachable with a TLS reason, got \(error)")
        }
        return nil
    }

    @Test func theServerIsVerifiedAgainstTheConfiguredCA() async throws {
        let cluster = try ThrowawayPostgres(.init(tls: true))
        let store = try await PostgresStore.open(Self.config(cluster, caFile: cluster.caFile))
        await store.close()
        #expect(store.migrationsApplied == PostgresStore.migrationNames)
        #expect(store.config.endpointDescription == "localhost:\(cluster.port) (TLS)")
    }

    @Test func aCertificateFromAnotherCAIsRefused() async throws {
        let cluster = try ThrowawayPostgres(.init(tls: true))
        let reason = await Self.tlsRefusal(Self.config(cluster, caFile: cluster.unrelatedCAFile))
        #expect(reason != nil)
        // Refused before a password was sent or anything was written.
        #expect(try cluster.psql("SELECT to_regclass('public.anonreg_migration') IS NULL;", database: cluster.database) == "t")
    }

    /// The certificate names localhost only: reached as 127.0.0.1 (the same server, but not a
    /// name or address the certificate gives), it is refused.
    @Test func aCertificateForAnotherNameIsRefused() async throws {
        let cluster = try ThrowawayPostgres(.init(tls: true))
        let reason = await Self.tlsRefusal(Self.config(cluster, host: "127.0.0.1", caFile: cluster.caFile))
        #expect(reason != nil)
    }
}
