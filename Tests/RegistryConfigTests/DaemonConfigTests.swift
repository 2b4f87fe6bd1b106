import RegistryCore
import RegistryProtocol
import Testing

@testable import RegistryConfig

struct DaemonConfigTests {
    static let template = ConfigTemplate.render(stateDirectory: "/var/lib/anonreg", uid: 1000)

    @Test func theInitTemplateParsesToTheDefaults() throws {
        let config = try DaemonConfig.parse(Self.template, path: "anonreg.toml")
        #expect(config.socketPath == "/var/lib/anonreg/anonreg.sock")
        #expect(config.socketMode == 0o660)
        #expect(config.keysDirectory == "/var/lib/anonreg/keys")
        #expect(config.databasePath == "/var/lib/anonreg/registry.sqlite")
        #expect(config.adminUIDs == [1000])
        #expect(config.clinics.map(\.id.rawValue) == ["local"])
        #expect(config.clinic(uid: 1000, gid: 5) == ClinicID("local"))
        #expect(config.clinic(uid: 1001, gid: 5) == nil)
        #expect(config.rules == MonitoringRules.defaults)
        #expect(config.rateLimits == .init(oprfPerMinute: 120, oprfBurst: 100))
    }

    @Test func everyTemplateKeyIsCommented() {
        let lines = Self.template.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Walking up from each key over the keys and [table] headers of its block, the first
        // other line is a comment.
        for (i, line) in lines.enumerated() where line.contains(" = ") && !line.hasPrefix("#") {
            var j = i - 1
            while j >= 0, lines[j].contains(" = ") || lines[j].hasPrefix("[") { j -= 1 }
            #expect(j >= 0 && lines[j].hasPrefix("#"), "no comment above: \(line)")
        }
    }

    @Test(arguments: [
        (
            "unknown key",
            "[daemon]\nsocket = \"/s\"\nstate_dir = \"/d\"\ncolour = \"red\"\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"restart\"\ncap_days = 1\n",
            "unknown keys"
        ),
        (
            "relative socket",
            "[daemon]\nsocket = \"s\"\nstate_dir = \"/d\"\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"restart\"\ncap_days = 1\n",
            "absolute"
        ),
        (
            "world socket mode",
            "[daemon]\nsocket = \"/s\"\nsocket_mode = \"0666\"\nstate_dir = \"/d\"\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"restart\"\ncap_days = 1\n",
            "socket_mode"
        ),
        (
            "bad relapse",
            "[daemon]\nsocket = \"/s\"\nstate_dir = \"/d\"\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"forgive\"\ncap_days = 1\n",
            "relapse"
        ),
        (
            "cap below remission",
            "[daemon]\nsocket = \"/s\"\nstate_dir = \"/d\"\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 10\nrelapse = \"restart\"\ncap_days = 5\n",
            "cap_days"
        ),
        (
            "uid in two clinics",
            "[daemon]\nsocket = \"/s\"\nstate_dir = \"/d\"\n[clinics.a]\nuids = [5]\n[clinics.b]\nuids = [5]\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"restart\"\ncap_days = 1\n",
            "both clinics"
        ),
        (
            "statistician who is a clinic",
            "[daemon]\nsocket = \"/s\"\nstate_dir = \"/d\"\n[access]\nstatistician_uids = [5]\n[clinics.a]\nuids = [5]\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"restart\"\ncap_days = 1\n",
            "never for clinic peers"
        ),
        // Issue 14 §4: nobody (uid 65534) has primary gid 65534 (nogroup) on Debian; a clinic
        // matched by that gid would make the statistician connect as the clinic.
        (
            "statistician whose primary group is a clinic's",
            "[daemon]\nsocket = \"/s\"\nstate_dir = \"/d\"\n[access]\nstatistician_uids = [65534]\n[clinics.a]\ngids = [65534]\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"restart\"\ncap_days = 1\n",
            "primary gid 65534, a gid of clinic a"
        ),
        ("no categories", "[daemon]\nsocket = \"/s\"\nstate_dir = \"/d\"\n[categories]\n", "at least one"),
        ("syntax", "[daemon\n", "syntax"),
        (
            "missing key",
            "[daemon]\nstate_dir = \"/d\"\n[categories.x]\ncheckup_interval_days = 1\nremission_days = 1\nrelapse = \"restart\"\ncap_days = 1\n",
            "missing key"
        ),
    ])
    func invalidConfigsAreRefusedWithAReason(name: String, text: String, expected: String) {
        do {
            _ = try DaemonConfig.parse(text, path: "test.toml")
            Issue.record("\(name) was accepted")
        } catch {
            #expect(error.description.contains(expected), "\(name): \(error)")
            #expect(error.description.hasPrefix("test.toml: "))
        }
    }

    @Test func aClinicByGroup() throws {
        let text = Self.template.replacingOccurrences(
            of: "[rate_limits]", with: "[clinics.north]\nuids = []\ngids = [4242]\n\n[rate_limits]")
        let config = try DaemonConfig.parse(text, path: "x")
        #expect(config.clinic(uid: 7, gid: 4242) == ClinicID("north"))
        #expect(config.clinic(uid: 1000, gid: 4242) == ClinicID("local"), "uid wins over gid")
    }
}
