import RegistryCore
import Testing

@testable import RegistryConfig

/// `[limits]` (DaemonConfig+Limits.swift): defaults, per-clinic budgets, refused values.
struct LimitsConfigTests {
    static let template = ConfigTemplate.render(stateDirectory: "/var/lib/anonreg", uid: 1000)

    @Test func theTemplateHasTheDefaults() throws {
        let config = try DaemonConfig.parse(Self.template, path: "x")
        #expect(config.limits == .defaults)
    }

    @Test func aClinicHasABudgetOfItsOwn() throws {
        let text = Self.template.replacingOccurrences(of: "[audit]", with: "[limits.clinics.local]\nwrites_per_minute = 6000\n\n[audit]")
        let config = try DaemonConfig.parse(text, path: "x")
        let local = ClinicID("local")!
        #expect(config.limits.budget(for: local).writesPerMinute == 6000)
        #expect(config.limits.budget(for: local).readsPerMinute == 3000, "unset keys come from [limits]")
        #expect(config.limits.budget(for: ClinicID("other")!) == .defaults)
    }

    @Test(arguments: [
        ("max_connections = 1024", "max_connections = 0", "limits.max_connections"),
        ("max_connections_per_peer = 64", "max_connections_per_peer = 5000", "max_connections_per_peer"),
        ("fd_reserve = 256", "fd_reserve = 10", "limits.fd_reserve"),
        ("request_seconds = 30", "request_seconds = 0", "limits.request_seconds"),
        ("writes_per_minute = 1200", "writes_per_minute = -1", "limits.writes_per_minute"),
        ("read_burst = 600", "read_burst = \"many\"", "limits.read_burst"),
        ("request_seconds = 30", "request_secs = 30", "unknown keys: limits.request_secs"),
    ])
    func badValuesAreRefusedNamingTheKey(old: String, new: String, key: String) {
        let text = Self.template.replacingOccurrences(of: old, with: new)
        #expect(text != Self.template)
        do {
            _ = try DaemonConfig.parse(text, path: "x")
            Issue.record("\(new) was accepted")
        } catch {
            #expect(error.description.contains(key), "\(error)")
        }
    }

    @Test func aBudgetForAnUnknownClinicIsRefused() {
        let text = Self.template.replacingOccurrences(of: "[audit]", with: "[limits.clinics.nobody]\nwrites_per_minute = 1\n\n[audit]")
        #expect(throws: ConfigError.self) { _ = try DaemonConfig.parse(text, path: "x") }
    }
}
