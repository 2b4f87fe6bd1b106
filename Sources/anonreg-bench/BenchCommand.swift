import ArgumentParser
import Foundation

/// `anonreg-bench`: the load generator and in-process limits behind `make bench`,
/// `make bench-scale`, `make bench-audit` and `make bench-history` (docs/PERFORMANCE.md). It
/// prints figures; it never fails on a target (targets are reported as met or missed).
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "anonreg-bench",
        abstract: "Measure anonregd over its Unix socket against the in-process limits (docs/PERFORMANCE.md).",
        subcommands: [
            SocketBench.self, ScaleBench.self, AuditBench.self, FairnessBench.self, FloodCommand.self, NoiseBench.self, HistoryBench.self,
        ],
        defaultSubcommand: SocketBench.self)
}

/// Options every benchmark shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "Directory holding anonreg and anonregd (default: the directory of this executable).")
    var binDir: String?

    @Option(help: "Directory for results (<timestamp>.json and .md).")
    var results = "bench/results"

    @Option(help: "Scratch directory for state directories (default: a new one under $TMPDIR or /tmp).")
    var workDir: String?

    @Flag(help: "Keep the scratch directory afterwards.")
    var keep = false

    var resolvedBinDir: String {
        if let binDir { return binDir }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return me.deletingLastPathComponent().path
    }

    func makeWorkDir(_ name: String) throws -> String {
        if let workDir {
            try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
            return workDir
        }
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/anonreg-\(name).XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError.io("mkdtemp in \(base)")
        }
        let path = String(cString: made)
        chmod(path, 0o750)
        return path
    }

    func cleanUp(_ dir: String) {
        if !keep && workDir == nil { try? FileManager.default.removeItem(atPath: dir) }
    }
}

/// The config edits every benchmark daemon gets: the OPRF rate limit is lifted (it exists to
/// slow down a dictionary-guessing clinic, and would otherwise be the only thing measured), and
/// so are the clinic budgets of `[limits]` unless `liftBudgets` is false (the fairness mode
/// measures them).
func benchConfig(_ text: String, logLevel: String, liftBudgets: Bool = true) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
        if line.hasPrefix("oprf_per_minute") { return "oprf_per_minute = 1000000" }
        if line.hasPrefix("oprf_burst") { return "oprf_burst = 1000000" }
        if liftBudgets {
            for key in ["writes_per_minute", "write_burst", "reads_per_minute", "read_burst"] where line.hasPrefix(key + " =") {
                return "\(key) = 10000000"
            }
        }
        if line.hasPrefix("log_level") { return "log_level = \"\(logLevel)\"" }
        return String(line)
    }.joined(separator: "\n")
}
