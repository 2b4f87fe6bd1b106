import Foundation

/// The audit context of the request being served (a task-local the server sets per request).
///
/// - The server names the actor and action before the handler runs.
/// - The store records the keyed reference of the subject the request touched, when it opens
///   or erases one, so the entry can name the subject without the request path knowing it.
/// - A write that changes registry data appends the request's entry inside its own transaction
///   (docs/CRYPTO.md §Audit, "effect and entry commit together") and marks it here, so the
///   server does not append it a second time.
/// - An erasure marks the reference as erased: entries written after it keep a commitment to
///   the reference but no link back to it (docs/CRYPTO.md §Audit, subject commitments).
public final class AuditRecorder: @unchecked Sendable {
    @TaskLocal public static var current: AuditRecorder?

    /// Who did what, as the entry will say.
    public struct Action: Sendable, Equatable {
        public var actor: String
        public var action: String

        public init(actor: String, action: String) {
            self.actor = actor
            self.action = action
        }
    }

    private let lock = NSLock()
    private var reference: [UInt8]?
    private var subjectKey: [UInt8]?
    private var pending: Action?
    private var erased = false
    private var appended = false
    private var detail: String?
    private var integrityDiagnostic: String?

    public init(_ action: Action? = nil) {
        pending = action
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    public var subjectReference: [UInt8]? { locked { reference } }

    /// Records the subject the request touched: its keyed audit reference, and `subjectKey`, a
    /// storage-private key by which the store checks, when the entry is appended, that the
    /// subject still exists (an erasure may commit between a read and its entry).
    public func record(_ reference: [UInt8], subjectKey: [UInt8]? = nil) {
        locked {
            self.reference = reference
            self.subjectKey = subjectKey
        }
    }

    /// Names (or renames) the action before the effect happens.
    public func describe(_ action: Action) { locked { pending = action } }

    /// The entry to append with the effect, unless one was appended already.
    public var actionToAppend: Action? { locked { appended ? nil : pending } }

    /// The subject's data is gone; later entries must not link back to it.
    public func markErased() { locked { erased = true } }
    public var subjectErased: Bool { locked { erased } }

    /// Adds what a successful request did beyond its action (a batch's count); the entry's
    /// result then reads `ok (DETAIL)`. A refusal's result stays its error code alone.
    public func note(_ detail: String) { locked { self.detail = detail } }

    /// Part of what a request touched failed an integrity check although the request
    /// succeeded (a withdrawal whose records failed to open): the server still alerts on it as
    /// on a refused one. `diagnostic` is for the log only (a `StorageError`'s text).
    public func markIntegrityFailure(_ diagnostic: String) { locked { integrityDiagnostic = diagnostic } }
    public var integrityFailure: String? { locked { integrityDiagnostic } }

    /// The request was refused as malformed before it reached any registry data or key (a bad
    /// OPRF batch): no entry is written for it (docs/PROTOCOL.md §Audit).
    public func drop() { locked { pending = nil } }

    /// The entry was appended in the same transaction as the effect.
    public func markAppended() { locked { appended = true } }

    /// The transaction that appended the entry did not commit (a savepoint rolled back, a
    /// transaction run again after a deadlock): back to `before`, what `appendedWithEffect` was
    /// when that write began, so the entry is appended again with the effect, or by the server.
    public func restoreAppended(_ before: Bool) { locked { appended = before } }
    public var appendedWithEffect: Bool { locked { appended } }

    /// The event for this request with `result`, keeping the subject link only while the
    /// subject exists.
    public func event(result: String) -> AuditEvent? {
        locked {
            let text = if result == "ok", let detail { "ok (\(detail))" } else { result }
            return pending.map {
                AuditEvent(
                    actor: $0.actor, action: $0.action, result: text, subjectReference: reference, linked: !erased,
                    subjectKey: subjectKey)
            }
        }
    }
}

/// One audit entry to append: who, what, with what result, about which subject (a keyed
/// reference, never a code or a case handle). The log stores only a salted commitment to the
/// reference; `linked` keeps the salt and reference beside it so that the subject's own access
/// log can find the entry, until the subject is erased.
public struct AuditEvent: Sendable, Equatable {
    public var actor: String
    public var action: String
    public var result: String
    public var subjectReference: [UInt8]?
    public var linked: Bool
    /// The store's own key of the subject (never written to the log): the link is kept only if
    /// the subject still exists when the entry is appended.
    public var subjectKey: [UInt8]?

    public init(
        actor: String, action: String, result: String, subjectReference: [UInt8]?, linked: Bool = true,
        subjectKey: [UInt8]? = nil
    ) {
        self.actor = actor
        self.action = action
        self.result = result
        self.subjectReference = subjectReference
        self.linked = linked
        self.subjectKey = subjectKey
    }
}

/// An audit entry as read back, for self-access and export.
public struct AuditRecord: Sendable, Equatable {
    public var seq: Int64
    public var at: String
    public var actor: String
    public var action: String
    public var result: String

    public init(seq: Int64, at: String, actor: String, action: String, result: String) {
        self.seq = seq
        self.at = at
        self.actor = actor
        self.action = action
        self.result = result
    }
}
