import Foundation
import HTTPTypes
import RegistryConfig
import RegistryCore
import Testing

@testable import RegistryServer

struct RouteTableTests {
    @Test func routesAreUnique() {
        #expect(Set(RouteTable.routes).count == RouteTable.routes.count)
    }

    @Test func clinicDataRoutesAreForClinicsOnly() {
        for spec in RouteTable.routes
        where spec.path.hasPrefix("/v1/") && !spec.path.hasPrefix("/v1/admin") && spec.path != "/v1/health"
            && !spec.path.hasPrefix("/v1/stats")
        {
            #expect(spec.access == .clinic, "\(spec.method) \(spec.path)")
        }
        // Statistics are never for clinics (invariant 2).
        #expect(RouteTable.spec(.get, "/v1/stats").access == .statistics)
        #expect(RouteTable.spec(.get, "/v1/stats/privacy").access == .statistics)
        #expect(!AccessRule.statistics.admits([.clinic(ClinicID("north")!)]))
        for spec in RouteTable.routes where spec.path.hasPrefix("/v1/admin") {
            #expect(spec.access == .admin, "\(spec.method) \(spec.path)")
        }
        // The metrics hold no registry data: admins and monitors.
        #expect(RouteTable.spec(.get, "/metrics").access == .monitoring)
    }

    /// Issue 14 §4: a statistician or admin that also resolves to a clinic (by uid or by its
    /// primary gid) gets no statistics, whatever its other roles; each role alone does.
    @Test func statisticsNeverReachAPeerThatIsAlsoAClinic() {
        let north = Role.clinic(ClinicID("north")!)
        #expect(AccessRule.statistics.admits([.statistician(uid: 2001)]))
        #expect(AccessRule.statistics.admits([.admin(uid: 0)]))
        #expect(!AccessRule.statistics.admits([north, .statistician(uid: 2001)]))
        #expect(!AccessRule.statistics.admits([.statistician(uid: 2001), north]))
        #expect(!AccessRule.statistics.admits([north, .admin(uid: 0), .statistician(uid: 0)]))
        // The refusal says why and where to go instead, naming the clinic.
        let refusal = APIError.forbidden(.statistics, roles: [.admin(uid: 0), north])
        #expect(refusal.message.contains("clinic north") && refusal.message.contains("anonreg stats --state-dir"))
    }

    /// The same through AccessControl: a statistician uid whose gid is a clinic's resolves to
    /// both roles, and the statistics rule refuses that set.
    @Test func aStatisticianInAClinicGroupIsRefusedStatistics() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("anonreg-access-\(UUID().uuidString).toml").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        let text =
            ConfigTemplate.render(
                stateDirectory: "/var/lib/anonreg", socketPath: "/run/anonreg/anonreg.sock", adminUIDs: [0], localClinicUID: nil,
                serviceUser: nil
            )
            .replacingOccurrences(of: "statistician_uids = []", with: "statistician_uids = [2001]")
            + "\n[clinics.north]\nuids = []\ngids = [2500]\n"
        try text.write(toFile: tmp, atomically: true, encoding: .utf8)
        let access = AccessControl(config: try DaemonConfig.load(path: tmp))
        let roles = access.roles(of: PeerCredentials(pid: 1, uid: 2001, gid: 2500))
        #expect(roles.contains(.statistician(uid: 2001)) && roles.contains(.clinic(ClinicID("north")!)))
        #expect(!AccessRule.statistics.admits(roles))
        #expect(AccessRule.statistics.admits(access.roles(of: PeerCredentials(pid: 1, uid: 2001, gid: 2001))))
    }

    @Test func matchingUsesTemplates() {
        #expect(RouteTable.match(.get, "/v1/cases/case_0123")?.path == "/v1/cases/{case}")
        #expect(RouteTable.match(.post, "/v1/cases/x/checkups")?.path == "/v1/cases/{case}/checkups")
        #expect(RouteTable.match(.get, "/v1/cases/") == nil)
        #expect(RouteTable.match(.delete, "/v1/health") == nil)
        #expect(RouteTable.pathExists("/v1/health"))
        #expect(!RouteTable.pathExists("/v2/health"))
        #expect(RouteTable.routerPath("/v1/cases/{case}/code") == "/v1/cases/:case/code")
    }

    /// Every served route is in docs/openapi.yaml, and every documented route is served.
    @Test func openAPIDocumentsExactlyTheServedRoutes() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        var documented = Set<String>()
        var inPaths = false
        var currentPath: String? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("paths:") {
                inPaths = true
                continue
            }
            if inPaths, let first = line.first, first != " ", first != "#" { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                currentPath = String(line.dropFirst(2).dropLast())
            } else if let path = currentPath, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast()
                if ["get", "post", "put", "delete", "patch"].contains(String(method)) {
                    documented.insert("\(method.uppercased()) \(path)")
                }
            }
        }
        let served = Set(RouteTable.routes.map { "\($0.method.rawValue) \($0.path)" })
        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented).sorted())")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
    }

    /// Every route that draws on a clinic budget (`[limits]`) can answer 429 `rate_limited`
    /// before it reads the body; docs/openapi.yaml lists that 429 for exactly those routes and
    /// for the OPRF route (its own bucket), and for no other.
    @Test func openAPIListsTheBudget429ForEveryBudgetedRoute() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        // The lines of each operation, keyed "METHOD /path".
        var operations: [String: [Substring]] = [:]
        var inPaths = false
        var currentPath: String? = nil
        var current: String? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("paths:") {
                inPaths = true
                continue
            }
            if inPaths, let first = line.first, first != " ", first != "#" { inPaths = false }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                currentPath = String(line.dropFirst(2).dropLast())
                current = nil
            } else if let path = currentPath, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                current = "\(line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()) \(path)"
            } else if let current {
                operations[current, default: []].append(line)
            }
        }
        let budgeted = RouteTable.routes.filter { $0.budget != nil }
        #expect(budgeted.count == 11, "the clinic routes that read or write registry data")
        for spec in RouteTable.routes {
            let key = "\(spec.method.rawValue) \(spec.path)"
            let lines = try #require(operations[key], "\(key) is not in docs/openapi.yaml")
            let has429 = lines.contains("        \"429\":")
            if spec.budget != nil {
                #expect(
                    has429 && lines.contains("          $ref: \"#/components/responses/ClinicBudgetExceeded\""),
                    "\(key) answers 429 rate_limited over the clinic's budget; docs/openapi.yaml does not list it")
            } else {
                #expect(has429 == (spec.path == "/v1/oprf/evaluate"), "\(key): 429 listed \(has429), but no clinic budget covers it")
            }
        }
    }

    @Test func protocolMarkdownMentionsEveryRoute() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        for spec in RouteTable.routes {
            #expect(text.contains(spec.path), "docs/PROTOCOL.md does not mention \(spec.path)")
        }
    }
}
