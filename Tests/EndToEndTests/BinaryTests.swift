import AnonregTestSupport
import Foundation
import Testing

/// Runs the built executables as a user would.
struct BinaryTests {
    @Test(arguments: ["anonregd", "anonreg"])
    func versionPrintsTheRelease(binary: String) throws {
        let result = try Binaries.run(binary, ["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("0.1.0 (commit "), "the release, then the commit (DaemonOperationsTests checks it)")
    }

    @Test(arguments: ["anonregd", "anonreg"])
    func helpDescribesTheTool(binary: String) throws {
        let result = try Binaries.run(binary, ["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("USAGE: \(binary)"))
        #expect(result.stdout.contains("anonreg"))
    }

    @Test func unknownOptionIsAUsageError() throws {
        let result = try Binaries.run("anonregd", ["--config", "/nonexistent", "--no-such-option"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("Unknown option"))
    }
}
