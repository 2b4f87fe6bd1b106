import ServiceLifecycle

/// Checks every 15 s, while the daemon is in storage-full mode, whether space has returned
/// (docs/ROBUSTNESS.md §Disk full). Refused writes check too, so this matters only when no
/// client writes.
public struct SpaceReserveService: Service {
    let reserve: SpaceReserve

    public init(reserve: SpaceReserve) { self.reserve = reserve }

    public func run() async throws {
        guard reserve.isEnabled else { return }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(15)) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            if reserve.isStorageFull { reserve.recoverIfSpaceReturned() }
        }
    }
}
