import Synchronization

/// The live keyring of a running registry (docs/CRYPTO.md §Key hierarchy, "Key custody").
///
/// The daemon owns the one custody and lends it to whatever needs keys: the storage backend
/// seals and opens through it, the routes read the OPRF and audit keys from it, and the key
/// lifecycle routes (rotate, retire, destroy) replace its keyring after the change is on disk.
/// So storage and key custody change apart: a backend never owns, loads or replaces a keyring.
///
/// Every reader takes one snapshot per operation (`current`), so a rotation that lands mid-way
/// never mixes two keyrings inside one request.
public final class KeyCustody: Sendable {
    private let slot: Mutex<Keyring>

    public init(_ keyring: Keyring) {
        slot = Mutex(keyring)
    }

    /// The keyring in force now: a snapshot, unaffected by a later `replace`.
    public var current: Keyring { slot.withLock { $0 } }

    /// Puts `keyring` in force, after the lifecycle change that produced it reached the keys
    /// directory (Keyring+Lifecycle.swift writes before it returns).
    public func replace(_ keyring: Keyring) {
        slot.withLock { $0 = keyring }
    }
}
