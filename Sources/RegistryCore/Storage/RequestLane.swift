/// Which peer the work of the current task is for (a task-local the server sets per request).
/// The store's group-commit writer and read gate queue work per lane and serve lanes in turn, so
/// one clinic's queue does not delay another's (docs/ROBUSTNESS.md §Resource limits). Work
/// outside a request (the sweeper, rewrap batches, checkpoints) has no lane and shares one.
public enum RequestLane {
    @TaskLocal public static var current: String?

    /// The lane of work without one.
    public static let system = "system"
}
