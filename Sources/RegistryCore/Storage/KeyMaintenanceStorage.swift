/// What key maintenance needs from a backend (docs/CRYPTO.md §Key lifecycle): which KEK version
/// wraps how many data keys, and the resumable rewrap under the primary KEK. The keys themselves
/// are the daemon's (`KeyCustody`); a backend only reports and rewraps what it stores.
public protocol KeyMaintenanceStorage: Sendable {
    /// How many subjects' DEKs each KEK version wraps.
    func kekUsage() async throws(StorageError) -> [Int: Int]

    /// The same count, taken after every write already accepted has committed: what `keys
    /// destroy` must see, so that a write in flight under the version is counted.
    func kekUsageAfterPendingWrites() async throws(StorageError) -> [Int: Int]

    /// Rewraps up to `limit` DEKs that are not under the primary KEK. Resumable: each batch is
    /// one transaction, and a DEK is readable under its recorded version at every moment.
    func rewrapBatch(limit: Int) async throws(StorageError) -> RewrapProgress

    /// Refuses (`keyringBehind` with the registry's newest version) a new KEK version numbered
    /// `version` when the registry already knows that number: on several nodes, another node
    /// rotated to it or wrapped under it, and writing it here would make a second, different
    /// key of that number. A backend serving one node knows no other: the default refuses
    /// nothing.
    func refuseKnownKEKVersion(_ version: Int) async throws(StorageError)
}

extension KeyMaintenanceStorage {
    public func refuseKnownKEKVersion(_ version: Int) async throws(StorageError) {}
}
