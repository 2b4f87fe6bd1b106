import HTTPTypes

/// The one table that says which role may call which route. Routes are registered from this
/// table only (Routes.swift), so a route cannot exist without an entry here; review it as one
/// piece. docs/PROTOCOL.md and docs/openapi.yaml list the same routes, and a test checks that.
public struct RouteSpec: Sendable, Hashable {
    public var method: HTTPRequest.Method
    public var path: String
    public var access: AccessRule
    /// The audit log's name for what the route does; nil for routes that touch no registry data.
    public var action: String?

    public static func == (a: RouteSpec, b: RouteSpec) -> Bool { a.method == b.method && a.path == b.path }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(method.rawValue)
        hasher.combine(path)
    }
}

public enum RouteTable {
    public static let routes: [RouteSpec] = [
        RouteSpec(method: .get, path: "/v1/health", access: .anyKnownPeer, action: nil),
        RouteSpec(method: .post, path: "/v1/oprf/evaluate", access: .clinic, action: "oprf-evaluate"),
        RouteSpec(method: .post, path: "/v1/subjects", access: .clinic, action: "enrol"),
        RouteSpec(method: .post, path: "/v1/cases", access: .clinic, action: "link"),
        RouteSpec(method: .get, path: "/v1/cases/{case}", access: .clinic, action: "read-status"),
        RouteSpec(method: .post, path: "/v1/cases/{case}/checkups", access: .clinic, action: "add-checkup"),
        RouteSpec(method: .get, path: "/v1/cases/{case}/checkups", access: .clinic, action: "read-checkups"),
        RouteSpec(method: .post, path: "/v1/cases/{case}/code", access: .clinic, action: "reissue-code"),
        RouteSpec(method: .post, path: "/v1/cases/{case}/withdraw", access: .clinic, action: "withdraw"),
        RouteSpec(method: .post, path: "/v1/withdraw", access: .clinic, action: "withdraw-by-code"),
        RouteSpec(method: .post, path: "/v1/self", access: .clinic, action: "self-access"),
        RouteSpec(method: .get, path: "/v1/due", access: .clinic, action: "read-due-list"),
        RouteSpec(method: .post, path: "/v1/episodes/anonymous", access: .clinic, action: "anonymous-episode"),
        RouteSpec(method: .get, path: "/v1/stats", access: .statistics, action: "read-statistics"),
        RouteSpec(method: .get, path: "/v1/stats/privacy", access: .statistics, action: "read-privacy-budget"),
        RouteSpec(method: .get, path: "/v1/admin/keys", access: .admin, action: "read-keys"),
        RouteSpec(method: .post, path: "/v1/admin/keys/rotate", access: .admin, action: "rotate-kek"),
        RouteSpec(method: .post, path: "/v1/admin/keys/stage", access: .admin, action: "stage-kek"),
        RouteSpec(method: .post, path: "/v1/admin/keys/rewrap", access: .admin, action: "rewrap"),
        RouteSpec(method: .post, path: "/v1/admin/keys/retire", access: .admin, action: "retire-kek"),
        RouteSpec(method: .post, path: "/v1/admin/keys/destroy", access: .admin, action: "destroy-kek"),
        RouteSpec(method: .post, path: "/v1/admin/sweep", access: .admin, action: "sweep"),
        RouteSpec(method: .post, path: "/v1/admin/backup", access: .admin, action: "backup"),
        RouteSpec(method: .get, path: "/v1/admin/audit/verify", access: .admin, action: "audit-verify"),
        RouteSpec(method: .get, path: "/v1/admin/audit/export", access: .admin, action: "audit-export"),
        RouteSpec(method: .get, path: "/metrics", access: .monitoring, action: nil),
    ]

    public static func spec(_ method: HTTPRequest.Method, _ path: String) -> RouteSpec {
        guard let spec = routes.first(where: { $0.method == method && $0.path == path }) else {
            preconditionFailure("route \(method) \(path) is not in RouteTable")
        }
        return spec
    }

    /// The table entry a concrete request path falls under (for logs and metrics, which name the
    /// template, never the case handle in the path).
    public static func match(_ method: HTTPRequest.Method, _ path: String) -> RouteSpec? {
        routes.first { $0.method == method && matches(template: $0.path, path) }
    }

    /// Whether some route has this path (with another method: 405 rather than 404).
    public static func pathExists(_ path: String) -> Bool { !methods(for: path).isEmpty }

    /// The methods served on a path (the `Allow` header of a 405).
    public static func methods(for path: String) -> [String] {
        routes.filter { matches(template: $0.path, path) }.map(\.method.rawValue)
    }

    static func matches(template: String, _ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        let pattern = template.split(separator: "/", omittingEmptySubsequences: false)
        guard pattern.count == parts.count else { return false }
        return zip(pattern, parts).allSatisfy { t, p in (t.hasPrefix("{") && !p.isEmpty) || t == p }
    }

    /// Hummingbird's path syntax (`:case`) for a table path (`{case}`).
    static func routerPath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? ":" + part.dropFirst().dropLast() : part
        }.joined(separator: "/")
    }
}
