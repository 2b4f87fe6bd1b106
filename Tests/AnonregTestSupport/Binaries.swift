import Foundation

/// Locates and runs the package's built executables (they sit beside the test bundle).
public enum Binaries {
    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    public static var directory: URL {
        // ANONREG_TEST_BINARIES runs the end-to-end suites against another build's anonregd and
        // anonreg (e.g. main's, to check that an attack test fails without the fix).
        if let other = ProcessInfo.processInfo.environment["ANONREG_TEST_BINARIES"], !other.isEmpty {
            return URL(fileURLWithPath: other)
        }
        // .build/<triple>/debug/anonregPackageTests.xctest → .build/<triple>/debug
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent()
    }

    public static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    public static func run(_ name: String, _ arguments: [String], environment: [String: String]? = nil, input: String? = nil) throws
        -> Result
    {
        try runExecutable(path(name), arguments, environment: environment, input: input)
    }

    /// Runs any executable to completion and collects its output (see `Spawned`); `input` is its
    /// standard input (else /dev/null).
    public static func runExecutable(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        input: String? = nil
    ) throws -> Result {
        let outPath = NSTemporaryDirectory() + "anonreg-out-" + UUID().uuidString
        let errPath = NSTemporaryDirectory() + "anonreg-err-" + UUID().uuidString
        let inPath = NSTemporaryDirectory() + "anonreg-in-" + UUID().uuidString
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
            try? FileManager.default.removeItem(atPath: inPath)
        }
        if let input { try input.write(toFile: inPath, atomically: true, encoding: .utf8) }
        let child = try Spawned.start(
            executable, arguments, environment: environment, stdout: outPath, stderr: errPath,
            stdin: input == nil ? nil : inPath)
        let status = child.wait()
        return Result(
            status: status,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
}
