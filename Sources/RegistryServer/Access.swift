import HTTPTypes
import RegistryConfig
import RegistryCore

/// Who a peer is to the registry, from its credentials and the config.
public enum Role: Sendable, Equatable, CustomStringConvertible {
    case clinic(ClinicID)
    case admin(uid: UInt32)
    case statistician(uid: UInt32)
    /// A monitoring agent: `GET /metrics` and `GET /v1/health`, nothing else.
    case monitor(uid: UInt32)

    public var description: String {
        switch self {
        case .clinic(let id): "clinic \(id)"
        case .admin(let uid): "admin uid \(uid)"
        case .statistician(let uid): "statistician uid \(uid)"
        case .monitor(let uid): "monitor uid \(uid)"
        }
    }
}

/// Which roles a route admits.
public enum AccessRule: String, Sendable, CaseIterable {
    /// Any peer the config knows (clinic, admin, statistician or monitor).
    case anyKnownPeer = "any known peer"
    /// Clinics only: they act on their own cases.
    case clinic
    /// Admins only.
    case admin
    /// Admins and statisticians that are not also a clinic: aggregate statistics, never rows
    /// about people, and never for a peer that resolves to a clinic by uid or gid, whatever
    /// other roles it has (DESIGN invariant 2: a clinic could enrol a linkage value and watch
    /// the counts).
    case statistics = "admin or statistician (and not a clinic)"
    /// Admins and monitors: the metrics, which hold no registry data.
    case monitoring = "admin or monitor"

    /// The role a route acts as (for the audit log's actor): the first role the rule admits.
    func actingRole(_ roles: [Role]) -> Role? {
        roles.first { admits([$0]) }
    }

    func admits(_ roles: [Role]) -> Bool {
        switch self {
        case .anyKnownPeer: !roles.isEmpty
        case .clinic: roles.contains { if case .clinic = $0 { true } else { false } }
        case .admin: roles.contains { if case .admin = $0 { true } else { false } }
        case .statistics:
            !roles.contains { if case .clinic = $0 { true } else { false } }
                && roles.contains {
                    switch $0 {
                    case .admin, .statistician: true
                    case .clinic, .monitor: false
                    }
                }
        case .monitoring:
            roles.contains {
                switch $0 {
                case .admin, .monitor: true
                case .clinic, .statistician: false
                }
            }
        }
    }
}

/// Resolves a peer's roles. A uid can be an admin and a clinic at once (as `anonreg init`
/// configures for trying things on one machine); each route then picks the role it needs.
struct AccessControl: Sendable {
    let config: DaemonConfig

    func roles(of peer: PeerCredentials) -> [Role] {
        var roles: [Role] = []
        if let clinic = config.clinic(uid: peer.uid, gid: peer.gid) { roles.append(.clinic(clinic)) }
        if config.adminUIDs.contains(peer.uid) { roles.append(.admin(uid: peer.uid)) }
        if config.statisticianUIDs.contains(peer.uid) { roles.append(.statistician(uid: peer.uid)) }
        if config.monitorUIDs.contains(peer.uid) { roles.append(.monitor(uid: peer.uid)) }
        return roles
    }
}

extension RegistryApp {
    /// How a role appears as the audit log's actor (never a pid: pids are only for logs).
    static func actorName(_ role: Role) -> String {
        switch role {
        case .clinic(let id): "clinic \(id)"
        case .admin(let uid): "admin uid \(uid)"
        case .statistician(let uid): "statistician uid \(uid)"
        case .monitor(let uid): "monitor uid \(uid)"
        }
    }
}
