/// Versions that both the daemon and the CLI report. The wire types of protocol v1 live beside
/// this file; the module has no dependencies, so the CLI's clinic side can link it alone.
public enum AnonregVersion {
    /// The software release, reported by `--version` and `GET /v1/health`.
    public static let software = "0.1.0"
    /// The HTTP protocol version (path prefix `/v1`).
    public static let protocolVersion = 1
}
