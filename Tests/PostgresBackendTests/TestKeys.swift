import AnonregTestSupport
import RegistryKeyring
import RegistryPostgres

/// A keyring for the tests about connecting and migrating, which need one to open a store but
/// are not about keys: made once per test process, in a directory of its own.
enum TestKeys {
    static let directory = TemporaryDirectory()
    static let shared: KeyCustody = {
        do { return KeyCustody(try Keyring.create(in: directory.sub("keys"))) } catch {
            fatalError("could not create the test keyring: \(error)")
        }
    }()
}

extension PostgresStore {
    /// Opens with the shared test keyring.
    static func open(_ config: PostgresConfig) async throws(PostgresBackendError) -> PostgresStore {
        try await open(config, keys: TestKeys.shared)
    }
}
