import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import RegistryCore

/// The one path every request takes, written once (docs/PROTOCOL.md §Requests): the peer's
/// roles, the route table, storage-full mode, the clinic budgets, the handler with its access
/// rule, the single error mapping (`APIError.from`), the audit entry, the metrics and the access
/// log. The socket server (RegistryServerService), the in-process responder (the request fuzzer)
/// and HummingbirdTesting's router tests all answer through it, so none of them can skip a step.
struct RequestPipeline: HTTPResponder {
    typealias Context = RegistryRequestContext

    /// What the pipeline answered. `abandoned`: the request's deadline passed or its body ended
    /// early; it reached no registry data, is not audited, and the connection handlers logged
    /// it. Its answer is written only if the connection still takes it.
    struct Answer {
        var response: Response
        var abandoned = false
    }

    let app: RegistryApp
    let router: RouterResponder<RegistryRequestContext>
    /// Who is at the other end of a connection: `SO_PEERCRED`, read once per connection
    /// (PeerCredentialsTable), in the daemon.
    let identify: @Sendable (any Channel) -> PeerCredentials?

    init(app: RegistryApp, identify: @escaping @Sendable (any Channel) -> PeerCredentials?) {
        self.app = app
        self.router = app.buildRouter().buildResponder()
        self.identify = identify
    }

    /// HummingbirdTesting's entry point: the peer is whoever `identify` names for the channel.
    func respond(to request: Request, context: Context) async throws -> Response {
        guard let channel = context.channel else { return JSONBodies.errorResponse(.unknownPeer) }
        return await answer(request, channel: channel).response
    }

    /// A request on a connection: its peer's roles come from the configuration.
    func answer(_ request: Request, channel: any Channel) async -> Answer {
        let peer = identify(channel)
        return await answer(request, channel: channel, peer: peer, roles: peer.map { app.access.roles(of: $0) } ?? [])
    }

    /// A request from `peer` holding `roles`.
    func answer(_ request: Request, channel: any Channel, peer: PeerCredentials?, roles: [Role]) async -> Answer {
        let started = ContinuousClock.now
        var response: Response
        var route = "unmatched"
        if roles.isEmpty {
            response = JSONBodies.errorResponse(.unknownPeer)
            await app.auditUnknownPeer(peer)
        } else if let spec = RouteTable.match(request.method, request.uri.path) {
            route = spec.path
            let guardian = app.guardian(of: channel)
            let recorder = AuditRecorder()
            let acting = spec.access.actingRole(roles)
            if let action = spec.action {
                let role = acting ?? roles.first
                recorder.describe(AuditRecorder.Action(actor: role.map(RegistryApp.actorName) ?? "unknown peer", action: action))
            }
            var outcome: String
            (response, outcome) = await handle(request, spec: spec, channel: channel, peer: peer, roles: roles, recorder: recorder)
            if outcome == "ok", let diagnostic = recorder.integrityFailure {
                // It succeeded, but part of what it touched failed an integrity check (a
                // withdrawal whose records failed to open): alerted like a refused one.
                app.integrityFailure(source: "request", detail: "\(request.method) \(spec.path): \(diagnostic)")
            }
            if guardian?.abandoned == true || outcome == APIError.requestAbandoned.code {
                if guardian?.abandoned != true {
                    app.record(route: route, status: 408, elapsed: ContinuousClock.now - started)
                    app.logRefusal(
                        peer: peer, roles: roles, method: "\(request.method)", route: route, status: 408,
                        reason: "the body ended before it was complete")
                }
                return Answer(response: response, abandoned: true)
            }
            // Every request that reads or changes registry data is audited before it is
            // answered; if the entry cannot be written, the answer is an error. A successful
            // write has already appended its entry in its own transaction. Refusals that name
            // no subject are summarised (RefusalSummaries).
            if outcome != "refused_storage_full", !(outcome == "ok" && recorder.appendedWithEffect),
                let event = recorder.event(result: outcome)
            {
                do { try await app.appendAudit(event, refused: outcome != "ok") } catch {
                    app.logger.error("audit entry not written: \(error)")
                    var answer = APIError.auditFailed
                    switch error as? StorageError {
                    case .storageFull?: answer = .auditStorageFull
                    case .unavailable(let reason)?:
                        app.storageHealth.markDown(reason, logger: app.logger)
                        answer = .auditStorageUnavailable
                    default: break
                    }
                    response = JSONBodies.errorResponse(answer)
                }
            }
            if outcome == "storage_unavailable", app.storageHealth.downReason == nil {
                app.storageHealth.markDown("a request could not reach it", logger: app.logger)
            }
            // Any answer that says the disk is full (a write, or a read's audit entry) puts the
            // daemon in storage-full mode, which releases the space reserve.
            if response.status.code == 507, outcome != "refused_storage_full" { app.space.storageFullObserved() }
        } else {
            let allowed = RouteTable.methods(for: request.uri.path)
            response = JSONBodies.errorResponse(allowed.isEmpty ? .notFound : .methodNotAllowed)
            if !allowed.isEmpty { response.headers[.allow] = allowed.joined(separator: ", ") }
        }
        let elapsed = ContinuousClock.now - started
        app.record(route: route, status: response.status.code, elapsed: elapsed)
        // Access log: route template (never the case handle in the path), status, peer.
        // Refusals and unknown peers are summarised per (uid, route, status).
        if response.status.code >= 400 || roles.isEmpty {
            app.logRefusal(
                peer: peer, roles: roles, method: "\(request.method)", route: route, status: response.status.code, elapsed: elapsed)
        } else {
            app.logger.info(
                "\(request.method) \(route) \(response.status.code)",
                metadata: [
                    "peer.pid": "\(peer?.pid ?? -1)", "peer.uid": "\(peer?.uid ?? UInt32.max)",
                    "roles": "\(roles.map(\.description).joined(separator: ", "))",
                    "ms": "\(RegistryApp.milliseconds(elapsed))",
                ])
        }
        return Answer(response: response)
    }

    /// Storage-full mode and the clinic budget for a peer the route admits, then the handler
    /// (whose router refuses a peer it does not admit); every error becomes its one documented
    /// answer here. Returns the answer and the audit log's result word.
    private func handle(
        _ request: Request, spec: RouteSpec, channel: any Channel, peer: PeerCredentials?, roles: [Role], recorder: AuditRecorder
    ) async -> (Response, String) {
        let acting = spec.access.actingRole(roles)
        if spec.access.admits(roles), app.space.refuses(action: spec.action) {
            // Storage-full mode: the write is refused before it reaches storage, and not audited
            // (it touched no registry data), so that the room the reserve freed stays for the
            // audit entries of reads. Only for a peer the route admits: anyone else gets the
            // audited 403 whatever the mode, so a clinic trying an admin action while the disk
            // is full is not hidden behind an unaudited 507 (docs/PROTOCOL.md §4).
            return (JSONBodies.errorResponse(.storageFullMode), "refused_storage_full")
        }
        if let kind = spec.budget, spec.access.admits(roles), case .clinic(let clinic)? = acting,
            case let decision = app.budgets.limiter(kind).decide(clinic), !decision.allowed
        {
            // Over the clinic's budget (`[limits]`): refused before the body is read.
            Counter(label: "anonreg_budget_refused_total", dimensions: [("kind", kind.rawValue)]).increment()
            var response = JSONBodies.errorResponse(.rateLimited(retryAfter: decision.retryAfterSeconds))
            response.headers[.retryAfter] = String(decision.retryAfterSeconds)
            return (response, "rate_limited")
        }
        let context = RegistryRequestContext(source: .init(channel: channel, logger: app.logger), peer: peer, roles: roles)
        do {
            let response = try await RequestLane.$current.withValue(RegistryApp.lane(roles, acting: acting)) {
                try await AuditRecorder.$current.withValue(recorder) {
                    try await router.respond(to: request, context: context)
                }
            }
            return (response, "ok")
        } catch let error as HTTPError where error.status == .notFound {
            return (JSONBodies.errorResponse(.notFound), "not_found")
        } catch let error as HTTPError where error.status == .methodNotAllowed {
            return (JSONBodies.errorResponse(.methodNotAllowed), "method_not_allowed")
        } catch let error as APIError.RetryLater {
            var response = JSONBodies.errorResponse(error.error)
            response.headers[.retryAfter] = String(error.seconds)
            return (response, error.error.code)
        } catch {
            let mapped = APIError.from(error)
            if mapped.code == DomainError.integrityErrorCode {
                app.integrityFailure(source: "request", detail: "\(request.method) \(spec.path): \(APIError.diagnostic(error))")
            } else if mapped.status == .internalServerError {
                app.logger.error(
                    "request failed",
                    metadata: [
                        "error.type": "\(String(reflecting: type(of: error)))", "error.detail": "\(APIError.diagnostic(error))",
                    ])
            }
            return (JSONBodies.errorResponse(mapped), mapped.code)
        }
    }
}
