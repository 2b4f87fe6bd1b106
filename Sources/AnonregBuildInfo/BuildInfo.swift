/// What `--version` reports besides the release: the git commit the binaries were built from.
/// `generatedCommit` comes from the BuildInfoPlugin (scripts/build-info.sh), run before every
/// build. Only the two executables depend on this module, so a new commit relinks them and
/// recompiles nothing else.
public enum BuildInfo {
    /// 40 hex digits, with `-dirty` when the work tree had uncommitted changes; `unknown` when
    /// built from a copy that is neither a clone nor a `git archive` export.
    public static let commit = generatedCommit

    /// `0.1.0 (commit 3fd3026…)`: the text of `--version`.
    public static func versionText(_ release: String) -> String {
        "\(release) (commit \(commit))"
    }
}
