import HTTPTypes

/// The one table that says which role may call which route. Routes are registered from this
/// table only (Routes.swift), so a route cannot exist without an entry here; review it as one
/// piece. docs/PROTOCOL.md and docs/openapi.yaml list the same routes, and a test checks that.
public struct RouteSpec: Sendable, Hashable {
    public var method: HTTPRequest.Method
    public var path: String
    public var access: AccessRule

    public static func == (a: RouteSpec, b: RouteSpec) -> Bool { a.method == b.method && a.path == b.path }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(method.rawValue)
        hasher.combine(path)
    }
}

public enum RouteTable {
    public static let routes: [RouteSpec] = [
        RouteSpec(method: .get, path: "/v1/health", access: .anyKnownPeer),
        RouteSpec(method: .post, path: "/v1/oprf/evaluate", access: .clinic),
        RouteSpec(method: .post, path: "/v1/subjects", access: .clinic),
        RouteSpec(method: .post, path: "/v1/cases", access: .clinic),
        RouteSpec(method: .get, path: "/v1/cases/{case}", access: .clinic),
        RouteSpec(method: .post, path: "/v1/cases/{case}/checkups", access: .clinic),
        RouteSpec(method: .get, path: "/v1/cases/{case}/checkups", access: .clinic),
        RouteSpec(method: .post, path: "/v1/cases/{case}/code", access: .clinic),
        RouteSpec(method: .post, path: "/v1/cases/{case}/withdraw", access: .clinic),
        RouteSpec(method: .post, path: "/v1/withdraw", access: .clinic),
        RouteSpec(method: .post, path: "/v1/self", access: .clinic),
        RouteSpec(method: .get, path: "/v1/due", access: .clinic),
        RouteSpec(method: .post, path: "/v1/episodes/anonymous", access: .clinic),
        RouteSpec(method: .get, path: "/v1/admin/keys", access: .admin),
        RouteSpec(method: .post, path: "/v1/admin/keys/rotate", access: .admin),
        RouteSpec(method: .post, path: "/v1/admin/keys/rewrap", access: .admin),
        RouteSpec(method: .post, path: "/v1/admin/sweep", access: .admin),
        RouteSpec(method: .get, path: "/metrics", access: .admin),
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
