import Foundation

/// Collects, for the request being served, the keyed reference of the subject it touched. The
/// server sets one per request (a task-local); the store fills it in when it opens or erases a
/// subject, so the audit entry can name the subject without the request path knowing it.
public final class AuditRecorder: @unchecked Sendable {
    @TaskLocal public static var current: AuditRecorder?

    private let lock = NSLock()
    private var reference: [UInt8]?

    public init() {}

    public var subjectReference: [UInt8]? {
        lock.lock()
        defer { lock.unlock() }
        return reference
    }

    public func record(_ reference: [UInt8]) {
        lock.lock()
        self.reference = reference
        lock.unlock()
    }
}

/// One audit entry to append: who, what, with what result, about which subject (a keyed
/// reference, never a code or a case handle).
public struct AuditEvent: Sendable, Equatable {
    public var actor: String
    public var action: String
    public var result: String
    public var subjectReference: [UInt8]?

    public init(actor: String, action: String, result: String, subjectReference: [UInt8]?) {
        self.actor = actor
        self.action = action
        self.result = result
        self.subjectReference = subjectReference
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
