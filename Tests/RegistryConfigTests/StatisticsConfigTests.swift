import Testing

@testable import RegistryConfig

struct StatisticsConfigTests {
    static let template = ConfigTemplate.render(stateDirectory: "/var/lib/anonreg", uid: 1000)

    func parse(_ replacements: [(String, String)]) throws(ConfigError) -> DaemonConfig {
        var text = Self.template
        for (old, new) in replacements { text = text.replacingOccurrences(of: old, with: new) }
        return try DaemonConfig.parse(text, path: "anonreg.toml")
    }

    @Test func theTemplateHasTheDefaults() throws {
        #expect(try parse([]).statistics == .defaults)
        #expect(DaemonConfig.Statistics.defaults == .init(k: 5, privacy: false, epsilonMicro: 500_000, monthlyBudgetMicro: 2_000_000))
    }

    @Test func privacySettingsAreRead() throws {
        let config = try parse([
            ("privacy = false", "privacy = true"), ("epsilon = 0.5", "epsilon = 0.25"), ("k = 5", "k = 10"),
            ("monthly_budget = 2.0", "monthly_budget = 1.5"),
        ])
        #expect(config.statistics == .init(k: 10, privacy: true, epsilonMicro: 250_000, monthlyBudgetMicro: 1_500_000))
    }

    @Test(arguments: [
        ("k = 5", "k = 2", "statistics.k"),
        ("k = 5", "k = 101", "statistics.k"),
        ("epsilon = 0.5", "epsilon = 0.0", "statistics.epsilon"),
        ("epsilon = 0.5", "epsilon = 0.1234567", "statistics.epsilon"),
        ("epsilon = 0.5", "epsilon = 50.0", "statistics.epsilon"),
        ("monthly_budget = 2.0", "monthly_budget = 0.25", "statistics.monthly_budget"),
        ("privacy = false", "privacy = \"yes\"", "statistics.privacy"),
        ("k = 5", "k = 5\nsuppress_zero = true", "suppress_zero"),
    ])
    func badValuesAreRefusedNamingTheKey(old: String, new: String, key: String) {
        do {
            _ = try parse([(old, new)])
            Issue.record("accepted \(new)")
        } catch {
            #expect(error.description.contains(key), "\(error)")
        }
    }
}
