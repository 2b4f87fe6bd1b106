/// A long-lived key held by reference, so the keyring can keep many of them in collections and
/// share them across tasks. The bytes stay in one `SecretBytes` buffer (read-only secure memory)
/// and are wiped when the last reference goes.
public final class KeyMaterial: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let bytes: SecretBytes
    /// What the key is for, e.g. "kek 3" (never the key).
    public let name: String

    public init(_ bytes: consuming SecretBytes, name: String) {
        self.bytes = bytes
        self.name = name
    }

    public var count: Int { bytes.count }
    public var description: String { "KeyMaterial(\(name), \(bytes.count) bytes, redacted)" }
    public var debugDescription: String { description }
    /// `dump` and debuggers see only the redacted description.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .class) }
}
