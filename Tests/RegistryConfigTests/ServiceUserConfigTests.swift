import RegistryCore
import Testing

@testable import RegistryConfig

/// `daemon.user`, `access.monitor_uids`, the clinic ids a configuration may not use, and what a
/// reload logs (docs/OPERATIONS.md §Configuration, §Clinics and peers).
struct ServiceUserConfigTests {
    static func config(daemon: String = "", access: String = "", clinics: String = "") -> String {
        """
        [daemon]
        socket = "/run/anonreg/anonreg.sock"
        state_dir = "/var/lib/anonreg"
        \(daemon)
        [access]
        admin_uids = [0]
        \(access)
        \(clinics)
        [categories.x]
        checkup_interval_days = 1
        remission_days = 1
        relapse = "restart"
        cap_days = 1
        """
    }

    static func refusal(_ text: String) -> String? {
        do {
            _ = try DaemonConfig.parse(text, path: "t.toml")
            return nil
        } catch {
            return error.description
        }
    }

    /// Every process whose primary group is root's would act as the clinic.
    @Test func gidZeroIsNeverAClinic() {
        let why = Self.refusal(Self.config(clinics: "[clinics.north]\ngids = [0]"))
        #expect(why?.contains("clinics.north.gids contains 0 (root's group)") == true, "\(why ?? "accepted")")
    }

    /// `anonreg init`'s single-user trial makes the caller (root, in CI) a clinic.
    @Test func rootsUidMayStillBeAClinic() throws {
        let config = try DaemonConfig.parse(Self.config(clinics: "[clinics.local]\nuids = [0]"), path: "t.toml")
        #expect(config.clinic(uid: 0, gid: 0)?.rawValue == "local")
    }

    /// `nobody` (65534/65534 on Debian) stands in for the service user.
    @Test func theServiceUsersUidAndGroupAreNeverAClinic() throws {
        let nobody = try #require(ServiceUser.resolve("nobody"))
        let byUID = Self.refusal(Self.config(daemon: "user = \"nobody\"", clinics: "[clinics.north]\nuids = [\(nobody.uid)]"))
        #expect(byUID?.contains("the service user nobody (uid \(nobody.uid))") == true, "\(byUID ?? "accepted")")
        let byGID = Self.refusal(Self.config(daemon: "user = \"nobody\"", clinics: "[clinics.north]\ngids = [\(nobody.gid)]"))
        #expect(byGID?.contains("the group of the service user") == true, "\(byGID ?? "accepted")")
        // A numeric daemon.user is checked the same way.
        let numeric = Self.refusal(Self.config(daemon: "user = \"\(nobody.uid)\"", clinics: "[clinics.north]\nuids = [\(nobody.uid)]"))
        #expect(numeric != nil)
        // Without daemon.user the same clinic is fine (the trial layout).
        #expect(Self.refusal(Self.config(clinics: "[clinics.north]\nuids = [\(nobody.uid)]")) == nil)
    }

    /// A service user this host does not know (a packaging root) still parses; the daemon and
    /// --check-config refuse it at start.
    @Test func anUnknownServiceUserParses() throws {
        let config = try DaemonConfig.parse(Self.config(daemon: "user = \"anonreg-nonexistent\""), path: "t.toml")
        #expect(config.serviceUserSpec == "anonreg-nonexistent")
        #expect(config.serviceUser == nil)
        #expect(Self.refusal(Self.config(daemon: "user = \"Bad User\""))?.contains("daemon.user must be a user name or a uid") == true)
    }

    @Test func monitorUIDsParse() throws {
        let config = try DaemonConfig.parse(Self.config(access: "monitor_uids = [4242, 4243]"), path: "t.toml")
        #expect(config.monitorUIDs == [4242, 4243])
        #expect(Self.refusal(Self.config(access: "monitor_uids = [-1]"))?.contains("access.monitor_uids") == true)
    }

    @Test func theInstalledTemplateNamesTheServiceUserAndParses() throws {
        let text = ConfigTemplate.render(
            stateDirectory: "/var/lib/anonreg", socketPath: "/run/anonreg/anonreg.sock",
            adminUIDs: [0], localClinicUID: nil, serviceUser: "anonreg")
        let config = try DaemonConfig.parse(text, path: "t.toml")
        #expect(config.serviceUserSpec == "anonreg")
        #expect(config.monitorUIDs == [])
    }

    /// What SIGHUP logs: each change, and which of them wait for a restart.
    @Test func changesNameEveryDifference() throws {
        let old = try DaemonConfig.parse(
            Self.config(access: "statistician_uids = [7]", clinics: "[clinics.north]\nuids = [1201]\n[clinics.south]\nuids = [1301]"),
            path: "t.toml")
        let newText = Self.config(
            daemon: "log_level = \"debug\"", access: "monitor_uids = [9]",
            clinics: "[clinics.north]\nuids = [1201, 1202]\n[clinics.east]\ngids = [4000]\n[rate_limits]\noprf_burst = 5")
        let new = try DaemonConfig.parse(newText, path: "t.toml")
        let changes = old.changes(to: new).map(\.description)
        #expect(
            changes == [
                "daemon.log_level info -> debug (takes effect at the next restart)",
                "statistician removed: uid 7",
                "monitor added: uid 9",
                "clinic east added (gids 4000)",
                "clinic south removed (uids 1301)",
                "clinic north changed: uids 1201 -> uids 1201, 1202",
                "rate_limits.oprf_burst 100 -> 5",
            ])
        #expect(old.changes(to: old).isEmpty)
    }
}
