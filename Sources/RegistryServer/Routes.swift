import Foundation
import HTTPTypes
import Hummingbird
import Logging
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
import RegistryText

/// The handlers of protocol v1. Each is registered under its `RouteTable` entry; the wrapper
/// checks the entry's access rule before the handler runs.
extension RegistryApp {
    typealias Handler = @Sendable (Request, RegistryRequestContext) async throws -> Response

    func buildRouter() -> Router<RegistryRequestContext> {
        let router = Router(context: RegistryRequestContext.self)
        let handlers = self.handlers()
        precondition(Set(handlers.keys) == Set(RouteTable.routes), "every RouteTable entry has exactly one handler")
        for spec in RouteTable.routes {
            let handler = handlers[spec]!
            router.on(RouterPath(RouteTable.routerPath(spec.path)), method: spec.method) { request, context in
                guard spec.access.admits(context.roles) else { throw APIError.forbidden(spec.access, roles: context.roles) }
                return try await handler(request, context)
            }
        }
        return router
    }

    private func handlers() -> [RouteSpec: Handler] {
        let limit = Self.maxBodyBytes
        @Sendable func clinic(_ context: RegistryRequestContext) throws -> ClinicID {
            guard let id = context.clinic else { throw APIError.forbidden(.clinic) }
            return id
        }
        @Sendable func caseHandle(_ context: RegistryRequestContext) throws -> CaseHandle {
            guard let text = context.parameters.get("case"), let handle = CaseHandle(text) else { throw APIError.invalidCase }
            return handle
        }
        /// The language of the answer's plain-words fields (`reason`, `summary`, `accessLog[].text`):
        /// `Accept-Language`, else English (docs/PROTOCOL.md §Languages).
        @Sendable func language(_ request: Request) -> Language {
            Language.negotiate(acceptLanguage: request.headers[.acceptLanguage])
        }
        // `self.monitoring` is read per request: SIGHUP may have replaced it.
        return [
            RouteTable.spec(.get, "/v1/health"): { _, _ in
                try JSONBodies.response(HealthResponse(status: "ok", version: AnonregVersion.software))
            },
            RouteTable.spec(.post, "/v1/oprf/evaluate"): { request, context in
                let id = try clinic(context)
                let decision = self.rateLimiter.decide(id)
                guard decision.allowed else { throw APIError.RetryLater(error: .rateLimited, seconds: decision.retryAfterSeconds) }
                do {
                    let body = try await JSONBodies.decode(OPRFEvaluateRequest.self, from: request, limit: limit)
                    return try await self.evaluateOPRF(body.elements, clinic: id)
                } catch {
                    // A malformed request or batch (400) evaluated nothing: it leaves no audit
                    // entry. Rate-limit refusals (429) stay audited.
                    if APIError.from(error).status == .badRequest { AuditRecorder.current?.drop() }
                    throw error
                }
            },
            RouteTable.spec(.post, "/v1/subjects"): { request, context in
                let id = try clinic(context)
                let body = try await JSONBodies.decode(EnrolRequest.self, from: request, limit: limit)
                let language = language(request)
                return try JSONBodies.response(
                    try await self.monitoring.enrol(clinic: id, body, language: language), status: .created, language: language)
            },
            RouteTable.spec(.post, "/v1/cases"): { request, context in
                let id = try clinic(context)
                let body = try await JSONBodies.decode(CodeRequest.self, from: request, limit: limit)
                return try JSONBodies.response(try await self.monitoring.link(clinic: id, code: body.code), status: .created)
            },
            RouteTable.spec(.get, "/v1/cases/{case}"): { request, context in
                let language = language(request)
                return try JSONBodies.response(
                    try await self.monitoring.status(clinic: try clinic(context), case: try caseHandle(context), language: language),
                    language: language)
            },
            RouteTable.spec(.post, "/v1/cases/{case}/checkups"): { request, context in
                let id = try clinic(context)
                let handle = try caseHandle(context)
                let body = try await JSONBodies.decode(CheckupRequest.self, from: request, limit: limit)
                let language = language(request)
                return try JSONBodies.response(
                    try await self.monitoring.addCheckup(clinic: id, case: handle, body, language: language),
                    status: .created, language: language)
            },
            RouteTable.spec(.get, "/v1/cases/{case}/checkups"): { _, context in
                try JSONBodies.response(try await self.monitoring.checkups(clinic: try clinic(context), case: try caseHandle(context)))
            },
            RouteTable.spec(.post, "/v1/cases/{case}/code"): { request, context in
                let id = try clinic(context)
                let handle = try caseHandle(context)
                try await JSONBodies.requireEmpty(request, limit: limit)
                return try JSONBodies.response(try await self.monitoring.reissueCode(clinic: id, case: handle), status: .created)
            },
            RouteTable.spec(.post, "/v1/cases/{case}/withdraw"): { request, context in
                let id = try clinic(context)
                let handle = try caseHandle(context)
                try await JSONBodies.requireEmpty(request, limit: limit)
                return try JSONBodies.response(try await self.monitoring.withdraw(clinic: id, case: handle))
            },
            RouteTable.spec(.post, "/v1/withdraw"): { request, context in
                let id = try clinic(context)
                let body = try await JSONBodies.decode(CodeRequest.self, from: request, limit: limit)
                return try JSONBodies.response(try await self.monitoring.withdraw(clinic: id, code: body.code))
            },
            RouteTable.spec(.post, "/v1/self"): { request, context in
                _ = try clinic(context)
                let body = try await JSONBodies.decode(CodeRequest.self, from: request, limit: limit)
                let store = self.store
                let language = language(request)
                let answer = try await self.monitoring.selfAccess(code: body.code, language: language) { reference in
                    (try? await store.auditRecords(subjectReference: reference))?.map { AuditExport.accessLogEntry($0, language: language) }
                }
                return try JSONBodies.response(answer, language: language)
            },
            RouteTable.spec(.get, "/v1/due"): { request, context in
                let id = try clinic(context)
                let before = try Self.dueBefore(request, today: self.monitoring.clock.today)
                return try JSONBodies.response(try await self.monitoring.due(clinic: id, before: before))
            },
            RouteTable.spec(.post, "/v1/episodes/anonymous"): { request, context in
                let id = try clinic(context)
                let body = try await JSONBodies.decode(AnonymousEpisodeRequest.self, from: request, limit: limit)
                return try JSONBodies.response(try await self.monitoring.anonymousEpisode(clinic: id, body), status: .created)
            },
            RouteTable.spec(.get, "/v1/stats"): { request, _ in
                try await self.statistics(request)
            },
            RouteTable.spec(.get, "/v1/stats/privacy"): { request, _ in
                try Self.refuseQuery(request, accepted: [])
                return try await self.privacyStatus()
            },
            RouteTable.spec(.get, "/v1/admin/keys"): { _, _ in
                try JSONBodies.response(try await self.keysStatus())
            },
            RouteTable.spec(.post, "/v1/admin/keys/rotate"): { request, _ in
                try await JSONBodies.requireEmpty(request, limit: limit)
                return try JSONBodies.response(try await self.rotateKEK(), status: .created)
            },
            RouteTable.spec(.post, "/v1/admin/keys/stage"): { request, _ in
                try await JSONBodies.requireEmpty(request, limit: limit)
                return try JSONBodies.response(try await self.stageKEK(), status: .created)
            },
            RouteTable.spec(.post, "/v1/admin/keys/rewrap"): { request, _ in
                let body = try await JSONBodies.decode(RewrapRequest.self, from: request, limit: limit, emptyMeans: "{}")
                let progress: RewrapProgress
                do throws(StorageError) { progress = try await self.store.rewrapBatch(limit: body.batchSize) } catch {
                    throw DomainError.storage(error)
                }
                return try JSONBodies.response(
                    RewrapResponse(rewrapped: progress.rewrapped, remaining: progress.remaining, primary: progress.primaryVersion))
            },
            RouteTable.spec(.post, "/v1/admin/keys/retire"): { request, _ in
                let body = try await JSONBodies.decode(KEKVersionRequest.self, from: request, limit: limit)
                return try JSONBodies.response(try await self.changeKEK(body.version, retire: true))
            },
            RouteTable.spec(.post, "/v1/admin/keys/destroy"): { request, _ in
                let body = try await JSONBodies.decode(KEKVersionRequest.self, from: request, limit: limit)
                return try JSONBodies.response(try await self.changeKEK(body.version, retire: false))
            },
            RouteTable.spec(.post, "/v1/admin/sweep"): { request, _ in
                try await JSONBodies.requireEmpty(request, limit: limit)
                let report = try await self.sweep()
                self.recordSweep(failed: report.failed)
                self.logger.notice("sweep", metadata: ["reviewed": "\(report.reviewed)", "erased": "\(report.erased)"])
                return try JSONBodies.response(SweepResponse(report))
            },
            RouteTable.spec(.post, "/v1/admin/backup"): { request, _ in
                try await JSONBodies.requireEmpty(request, limit: limit)
                return try await self.backupResponse()
            },
            RouteTable.spec(.get, "/v1/admin/audit/verify"): { _, _ in
                let report: AuditChain.Report
                do throws(StorageError) { report = try await self.store.verifyAudit() } catch { throw DomainError.storage(error) }
                return try JSONBodies.response(report)
            },
            RouteTable.spec(.get, "/v1/admin/audit/export"): { request, _ in
                try Self.refuseQuery(request, accepted: ["since", "limit"])
                let query = request.uri.queryParameters
                let since =
                    try query.get("since").map { text throws -> Int64 in
                        guard let v = Int64(text), v >= 0 else {
                            throw WireError.invalidValue(field: "since", reason: "must be an entry number (0 or more)")
                        }
                        return v
                    } ?? 0
                let limit =
                    try query.get("limit").map { text throws -> Int in
                        guard let v = Int(text), (1...100_000).contains(v) else {
                            throw WireError.invalidValue(field: "limit", reason: "must be 1 to 100000")
                        }
                        return v
                    } ?? 10_000
                let entries: [AuditChain.Entry]
                let checkpoints: [AuditChain.Checkpoint]
                do throws(StorageError) {
                    entries = try await self.store.auditEntries(after: since, limit: limit)
                    // The checkpoint at `since` (the start a later page continues from) and every
                    // checkpoint that signs an entry of this page: an auditor verifies the export
                    // with the public key alone (docs/CRYPTO.md §Audit, "Exports").
                    checkpoints = try await self.store.auditCheckpoints(after: since - 1, through: entries.last?.seq ?? since)
                } catch {
                    throw DomainError.storage(error)
                }
                let text = try AuditExport.lines(entries: entries, checkpoints: checkpoints)
                var headers = HTTPFields()
                headers[.contentType] = "application/x-ndjson"
                headers[.cacheControl] = "no-store"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
            },
            RouteTable.spec(.get, "/metrics"): { _, _ in
                await self.refreshOperationalGauges()
                var headers = HTTPFields()
                headers[.contentType] = "text/plain; version=0.0.4"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.emitToBuffer())))
            },
        ]
    }

    /// Refuses a query parameter that is not in `accepted`, without repeating its name.
    static func refuseQuery(_ request: Request, accepted: [String]) throws {
        for (key, _) in request.uri.queryParameters where !accepted.contains(String(key)) {
            throw WireError.unknownField(in: "query", accepted: accepted)
        }
    }

    /// `before` defaults to tomorrow (everything due up to and including today). Any other query
    /// parameter is refused.
    static func dueBefore(_ request: Request, today: Day) throws -> Day {
        try refuseQuery(request, accepted: ["before"])
        let query = request.uri.queryParameters
        guard let text = query.get("before") else { return today.adding(days: 1) }
        guard let day = Day(text) else { throw WireError.invalidDate("before") }
        return day
    }

    func keysStatus() async throws -> KeysStatusResponse {
        let keyring = keys.current
        let usage: [Int: Int]
        do { usage = try await store.kekUsage() } catch { throw DomainError.storage(error) }
        let formatter = ISO8601DateFormatter()
        return KeysStatusResponse(
            primary: keyring.primaryKEK.version,
            versions: keyring.kekEntries.map {
                KEKVersionWire(
                    version: $0.version, status: $0.status.rawValue, createdAt: formatter.string(from: $0.createdAt),
                    subjects: usage[$0.version] ?? 0, retiredAt: $0.retiredAt.map(formatter.string(from:)),
                    promotedAt: $0.promotedAt.map(formatter.string(from:)))
            },
            oprfPublicKey: keyring.manifest.oprf.publicKey, linkageEpoch: keyring.manifest.oprf.epoch,
            auditPublicKey: keyring.manifest.audit.publicKey)
    }

    /// Retires (refused while any subject uses the version) or destroys (only a retired version
    /// that no subject uses, counted now, after the writes in flight: its key file is overwritten
    /// and removed) a KEK version.
    func changeKEK(_ version: Int, retire: Bool) async throws -> KeysStatusResponse {
        let usage: [Int: Int]
        do throws(StorageError) { usage = try await store.kekUsageAfterPendingWrites() } catch { throw DomainError.storage(error) }
        try keyChanges.withLock { _ in
            do {
                let keyring = keys.current
                let next =
                    retire
                    ? try keyring.retiringKEK(version: version, subjectsUsingIt: usage[version] ?? 0)
                    : try keyring.destroyingKEK(version: version, subjectsUsingIt: usage[version] ?? 0)
                keys.replace(next)
            } catch let error as KeyringError {
                switch error {
                case .unknownKEKVersion: throw APIError(.notFound, "unknown_kek_version", error.description)
                case .invalidTransition: throw APIError(.conflict, "kek_transition_refused", error.description)
                default: throw APIError(.conflict, "keyring_unchanged", "the keyring was not changed: \(error)")
                }
            }
        }
        logger.notice(retire ? "KEK retired" : "KEK destroyed", metadata: ["version": "\(version)"])
        return try await keysStatus()
    }

    /// A database backup (docs/CRYPTO.md §Database backups), streamed to the admin's CLI, which
    /// writes it where the admin chooses. The daemon itself writes only a temporary copy in the
    /// database's own directory (the one place its hardened unit may write), already unlinked
    /// while it is sent.
    func backupResponse() async throws -> Response {
        let started = backupRunning.withLock { running in
            if running { return false }
            running = true
            return true
        }
        guard started else {
            throw APIError(.conflict, "backup_in_progress", "another backup is being taken; wait for it to finish, then retry")
        }
        let release: @Sendable () -> Void = { [self] in self.backupRunning.withLock { $0 = false } }
        let prepared: any BackupStream
        do throws(StorageError) { prepared = try await store.prepareBackup() } catch {
            release()
            throw DomainError.storage(error)
        }
        logger.notice("backup", metadata: ["subjects": "\(prepared.subjects)", "bytes": "\(prepared.totalBytes)"])
        var headers = HTTPFields()
        headers[.contentType] = "application/octet-stream"
        headers[.cacheControl] = "no-store"
        headers[.contentLength] = String(prepared.totalBytes)
        let body = ResponseBody(contentLength: Int(prepared.totalBytes)) { writer in
            defer { release() }
            try await writer.write(ByteBuffer(bytes: prepared.headerBytes))
            while true {
                let chunk = try prepared.nextChunk(maxBytes: 1 << 20)
                if chunk.isEmpty { break }
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
            self.recordBackupSent()
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    func rotateKEK() async throws -> KeysStatusResponse {
        if keys.current.manifest.stagedVersion == nil { try await refuseKnownKEKVersion() }
        try keyChanges.withLock { _ in
            do {
                let rotated = try keys.current.rotatingKEK()
                keys.replace(rotated)
            } catch {
                throw APIError(.conflict, "keyring_unchanged", "the KEK was not rotated: \(error)")
            }
        }
        logger.notice("KEK rotated", metadata: ["primary": "\(keys.current.primaryKEK.version)"])
        return try await keysStatus()
    }

    /// Before a new KEK version is written here: refused when the registry already knows its
    /// number (another node of a PostgreSQL registry rotated to it; `refuseKnownKEKVersion`).
    private func refuseKnownKEKVersion() async throws {
        let next = (keys.current.kekEntries.map(\.version).max() ?? 0) + 1
        do throws(StorageError) { try await store.refuseKnownKEKVersion(next) } catch {
            guard case .keyringBehind(let known) = error else { throw DomainError.storage(error) }
            throw APIError(
                .conflict, "kek_transition_refused",
                "the registry already has KEK version \(known), which this node's keyring lacks or has not taken up: install that node's kek-\(known).key and keyring.json here and reload (systemctl reload anonregd), rather than write another key of that number"
            )
        }
    }

    /// Writes a new KEK version as staged (docs/CRYPTO.md §KEK lifecycle): nothing is wrapped
    /// under it until a rotation promotes it, so it can be copied to every node first.
    func stageKEK() async throws -> KeysStatusResponse {
        try await refuseKnownKEKVersion()
        let staged = try keyChanges.withLock { _ in
            do {
                let next = try keys.current.stagingKEK()
                keys.replace(next)
                return next.manifest.stagedVersion ?? 0
            } catch let error as KeyringError {
                if case .invalidTransition = error { throw APIError(.conflict, "kek_transition_refused", error.description) }
                throw APIError(.conflict, "keyring_unchanged", "no KEK was staged: \(error)")
            }
        }
        logger.notice("KEK staged", metadata: ["version": "\(staged)"])
        return try await keysStatus()
    }
}
