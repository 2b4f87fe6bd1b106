import Testing

@testable import RegistryConfig

/// `daemon.space_reserve_mib` (docs/ROBUSTNESS.md §Disk full).
struct SpaceReserveConfigTests {
    static let template = ConfigTemplate.render(stateDirectory: "/var/lib/anonreg", uid: 1000)

    func parse(_ old: String, _ new: String) throws(ConfigError) -> DaemonConfig {
        try DaemonConfig.parse(Self.template.replacingOccurrences(of: old, with: new), path: "anonreg.toml")
    }

    @Test func theTemplateReserves8MiBAndTheKeyIsRead() throws {
        #expect(Self.template.contains("space_reserve_mib = 8"))
        #expect(try parse("", "").spaceReserveMiB == 8)
        #expect(try parse("space_reserve_mib = 8", "space_reserve_mib = 0").spaceReserveMiB == 0)
        #expect(try parse("space_reserve_mib = 8", "space_reserve_mib = 64").spaceReserveMiB == 64)
        // Absent means the default.
        #expect(try parse("space_reserve_mib = 8", "").spaceReserveMiB == 8)
    }

    @Test(arguments: [
        "space_reserve_mib = -1", "space_reserve_mib = 4097", "space_reserve_mib = \"8\"", "space_reserve_mib = 1.5",
        "space_reserve = 8",
    ])
    func badValuesAreRefusedNamingTheKey(line: String) {
        do {
            _ = try parse("space_reserve_mib = 8", line)
            Issue.record("accepted \(line)")
        } catch {
            #expect(error.description.contains("space_reserve"), "\(error)")
        }
    }
}
