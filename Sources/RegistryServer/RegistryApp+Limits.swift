import Foundation
import Logging
import Metrics
import NIOCore
import RegistryConfig
import RegistryCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What one peer may take of the daemon (DESIGN invariant 9; docs/ROBUSTNESS.md §Resource
/// limits): the connection caps, the request deadline, the clinic budgets, and the bounded
/// audit and access-log cost of refusals.
final class LimitsState: Sendable {
    let connections: ConnectionLimiter
    let auditSummaries: RefusalSummaries<AuditRefusalKey>
    let logSummaries: RefusalSummaries<LogRefusalKey>
    let guards = Mutex<[ObjectIdentifier: RequestGuard]>([:])
    /// The soft `RLIMIT_NOFILE` and the descriptors open at start (FileDescriptorBudget), once known.
    let descriptors = Mutex<(softLimit: Int?, openAtStart: Int?)>((nil, nil))

    init(_ limits: DaemonConfig.Limits) {
        connections = ConnectionLimiter(
            caps: .init(
                total: limits.maxConnections, perPeer: limits.maxConnectionsPerPeer,
                unknown: limits.maxUnknownConnections))
        auditSummaries = RefusalSummaries(interval: Double(limits.refusalSummarySeconds))
        logSummaries = RefusalSummaries(interval: Double(limits.refusalSummarySeconds))
    }

    func caps(_ limits: DaemonConfig.Limits) -> ConnectionLimiter.Caps {
        let (soft, open) = descriptors.withLock { $0 }
        let total = FileDescriptorBudget.connectionCap(
            configured: limits.maxConnections, softLimit: soft, open: open, reserve: limits.fdReserve)
        return .init(total: total, perPeer: min(limits.maxConnectionsPerPeer, total), unknown: min(limits.maxUnknownConnections, total))
    }
}

extension RegistryApp {
    /// At start: raises the soft `RLIMIT_NOFILE` towards what the caps need (where allowed),
    /// then lowers the connection cap to what it leaves after the descriptors already open and
    /// `limits.fd_reserve`. Logs the figures, and warns when the limit cuts the configured cap.
    public func applyDescriptorBudget() {
        let config = self.config.limits
        let open = FileDescriptorBudget.openDescriptors()
        let soft = FileDescriptorBudget.softLimit(raisingTo: config.maxConnections + config.fdReserve + (open ?? 0))
        limits.descriptors.withLock { $0 = (soft, open) }
        let caps = limits.caps(config)
        limits.connections.reconfigure(caps)
        let metadata: Logger.Metadata = [
            "rlimit_nofile": "\(soft.map(String.init) ?? "unknown")", "fds_open": "\(open.map(String.init) ?? "unknown")",
            "fd_reserve": "\(config.fdReserve)", "max_connections": "\(caps.total)", "per_peer": "\(caps.perPeer)",
            "unknown_peers": "\(caps.unknown)",
        ]
        if caps.total < config.maxConnections {
            logger.warning("RLIMIT_NOFILE lowers the connection cap; raise LimitNOFILE= (docs/OPERATIONS.md §Sizing)", metadata: metadata)
        } else {
            logger.notice("connection limits", metadata: metadata)
        }
    }

    /// Called for every accepted connection once its credentials are read: counts it against
    /// the caps, or closes it at once. Also installs the request deadline.
    func admit(_ channel: any Channel, request seconds: Int) -> EventLoopFuture<Void> {
        guard let peer = peers.credentials(of: channel) else { return channel.eventLoop.makeSucceededVoidFuture() }
        let known = !access.roles(of: peer).isEmpty
        if let refusal = limits.connections.admit(uid: peer.uid, known: known) {
            if limits.logSummaries.note(LogRefusalKey(uid: peer.uid, route: "connect", status: 0)) {
                let caps = limits.connections.caps
                let cap =
                    switch refusal {
                    case .total: caps.total
                    case .peer: caps.perPeer
                    case .unknownPeers: caps.unknown
                    }
                logger.warning(
                    "connection refused: cap reached",
                    metadata: [
                        "peer.uid": "\(peer.uid)", "peer.pid": "\(peer.pid)", "cap": "\(refusal.rawValue)", "limit": "\(cap)",
                    ])
            }
            return channel.close().flatMapError { _ in channel.eventLoop.makeSucceededVoidFuture() }.flatMapThrowing {
                throw ConnectionRefused()
            }
        }
        let id = ObjectIdentifier(channel)
        let guardian = RequestGuard()
        limits.guards.withLock { $0[id] = guardian }
        let state = limits
        channel.closeFuture.whenComplete { _ in
            state.connections.release(uid: peer.uid, known: known)
            _ = state.guards.withLock { $0.removeValue(forKey: id) }
        }
        let events = RequestGuardEvents(
            timedOut: { [self] channel, route in
                record(route: route, status: 408, elapsed: .seconds(seconds))
                logRefusal(
                    peer: peer, roles: nil, method: "-", route: route, status: 408, reason: "request deadline of \(seconds) s passed")
            },
            parseFailed: { [self] channel, route, reason in
                let status = reason.hasPrefix("the request's headers") ? 431 : 400
                record(route: route, status: status, elapsed: .zero)
                logRefusal(peer: peer, roles: nil, method: "-", route: route, status: status, reason: reason)
            })
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                RequestDeadlineHandler(guardian: guardian, seconds: seconds, events: events),
                position: .first)
        }
    }

    func guardian(of channel: any Channel) -> RequestGuard? {
        limits.guards.withLock { $0[ObjectIdentifier(channel)] }
    }

    /// The handler after the HTTP codec that ends deadlines and answers parser refusals.
    func partsHandler(for channel: any Channel) -> RequestPartsHandler? {
        guard let guardian = guardian(of: channel) else { return nil }
        let peer = peers.credentials(of: channel)
        return RequestPartsHandler(
            guardian: guardian,
            events: RequestGuardEvents(
                timedOut: { _, _ in },
                parseFailed: { [self] _, route, reason in
                    let status = reason.hasPrefix("the request's headers") ? 431 : 400
                    record(route: route, status: status, elapsed: .zero)
                    logRefusal(peer: peer, roles: nil, method: "-", route: route, status: status, reason: reason)
                }))
    }

    /// The access-log line of a refused request (any status from 400 up, or an unknown peer):
    /// the first of its (uid, route, status) in a summary interval is logged at once, the rest
    /// are counted into one summary line (`flushRefusalSummaries`).
    func logRefusal(
        peer: PeerCredentials?, roles: [Role]?, method: String, route: String, status: Int, reason: String? = nil,
        elapsed: Duration? = nil
    ) {
        let uid = peer?.uid ?? UInt32.max
        guard limits.logSummaries.note(LogRefusalKey(uid: uid, route: route, status: status)) else { return }
        var metadata: Logger.Metadata = ["peer.pid": "\(peer?.pid ?? -1)", "peer.uid": "\(uid)"]
        if let roles { metadata["roles"] = "\(roles.isEmpty ? "unknown" : roles.map(\.description).joined(separator: ", "))" }
        if let reason { metadata["reason"] = "\(reason)" }
        if let elapsed { metadata["ms"] = "\(Self.milliseconds(elapsed))" }
        logger.info("\(method) \(route) \(status)", metadata: metadata)
    }

    static func milliseconds(_ elapsed: Duration) -> Int64 {
        elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }

    /// Appends `event` unless it is a refusal that a summary will count instead: refusals that
    /// name no subject are summarised per (actor, action, result); a refusal about a subject is
    /// always appended (it belongs to that subject's access log).
    func appendAudit(_ event: AuditEvent, refused: Bool) async throws {
        if refused, event.subjectReference == nil,
            !limits.auditSummaries.note(AuditRefusalKey(actor: event.actor, action: event.action, result: event.result))
        {
            return
        }
        try await store.appendAudit(event)
    }

    /// Peers with no role are audited too (docs/PROTOCOL.md §Audit), as actor
    /// `unknown peer uid N`, at most one entry per uid and summary interval plus a summary
    /// with the count (RefusalSummaries), so that a flood cannot fill the disk.
    func auditUnknownPeer(_ peer: PeerCredentials?) async {
        let actor = "unknown peer uid \(peer.map { String($0.uid) } ?? "unknown")"
        do {
            try await appendAudit(AuditEvent(actor: actor, action: "request", result: "unknown_peer", subjectReference: nil), refused: true)
        } catch {
            logger.error("audit entry for an unknown peer not written: \(error)")
        }
    }

    /// Writes the summaries whose interval has ended: one audit entry per (actor, action,
    /// result) and one log line per (uid, route, status), with the count and the first and last
    /// time. `all` writes every open one (at shutdown).
    func flushRefusalSummaries(all: Bool = false) async {
        for summary in limits.auditSummaries.due(flushAll: all) {
            let text =
                "\(summary.key.result); \(summary.count) more from \(RefusalSummaries<AuditRefusalKey>.timestamp(summary.first)) "
                + "to \(RefusalSummaries<AuditRefusalKey>.timestamp(summary.last))"
            do {
                try await store.appendAudit(
                    AuditEvent(actor: summary.key.actor, action: summary.key.action, result: text, subjectReference: nil))
            } catch {
                logger.error(
                    "audit summary not written: \(error)", metadata: ["actor": "\(summary.key.actor)", "count": "\(summary.count)"])
            }
        }
        for summary in limits.logSummaries.due(flushAll: all) {
            let what = summary.key.route == "connect" ? "connections refused at a cap" : "\(summary.key.route) \(summary.key.status)"
            logger.info(
                "\(what): \(summary.count) more like this",
                metadata: [
                    "peer.uid": "\(summary.key.uid)", "first": "\(RefusalSummaries<LogRefusalKey>.timestamp(summary.first))",
                    "last": "\(RefusalSummaries<LogRefusalKey>.timestamp(summary.last))",
                ])
        }
    }

    /// The lane a request's store work is queued in (RequestLane): its clinic, or its first role.
    static func lane(_ roles: [Role], acting: Role?) -> String {
        (acting ?? roles.first).map(actorName) ?? RequestLane.system
    }
}

struct ConnectionRefused: Error {}
