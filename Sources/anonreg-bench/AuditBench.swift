import ArgumentParser
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryStore

/// `make bench-audit` (issue 6): fill an audit chain of N entries through the store's own
/// append (group commit, signed checkpoints every `checkpoint_every`), then time verification in
/// process (`verifyAudit`) and offline (`anonreg audit verify --state-dir`), and print the rates.
struct AuditBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify a 1,000,000-entry audit chain and print the rate (make bench-audit).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Audit entries to append and verify.")
    var entries = 1_000_000

    @Option(help: "Concurrent appenders while filling (group commit batches them).")
    var writers = 256

    func run() async throws {
        let loadBefore = Machine.loadAverage()
        let work = try common.makeWorkDir("bench-audit")
        defer { common.cleanUp(work) }
        print("anonreg-bench audit: \(entries) entries, load average \(loadBefore), scratch \(work)")
        let state = try DaemonProcess(binDir: common.resolvedBinDir, stateDir: work + "/state") { $0 }
        let registry = try InProcessRegistry(stateDir: state.stateDir)

        // Fill: the store's own durable append, `writers` at a time.
        let fillStart = Clock.now()
        let perWriter = (entries + writers - 1) / writers
        let total = entries
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<writers {
                group.addTask {
                    let reference = try Sodium.randomBytes(count: KeyedHash.digestBytes)
                    for i in 0..<perWriter where w * perWriter + i < total {
                        try await registry.store.appendAudit(
                            AuditEvent(
                                actor: "clinic local", action: i % 3 == 0 ? "oprf-evaluate" : "read-status", result: "ok",
                                subjectReference: i % 3 == 0 ? nil : reference))
                    }
                }
            }
            try await group.waitForAll()
        }
        try await registry.store.checkpointAudit()
        let fillSeconds = Clock.now() - fillStart
        print("filled \(entries) entries in \(String(format: "%.1f", fillSeconds)) s (\(Int(Double(entries) / fillSeconds))/s appended)")

        let t0 = Clock.now()
        let online = try await registry.store.verifyAudit()
        let onlineSeconds = Clock.now() - t0
        print(
            "in process (store.verifyAudit): \(online.ok ? "OK" : "FAILED") \(online.entries) entries, \(online.checkpoints) checkpoints in "
                + "\(String(format: "%.2f", onlineSeconds)) s = \(Int(Double(online.entries) / onlineSeconds)) entries/s")
        registry.close()
        let dbBytes = SocketBench.fileBytes(state.databasePath)

        let t1 = Clock.now()
        let (status, maxRSS) = try DaemonProcess.runMeasured(
            state.binDir + "/anonreg", ["audit", "verify", "--state-dir", state.stateDir],
            output: work + "/verify.out")
        let offlineSeconds = Clock.now() - t1
        let output = ((try? String(contentsOfFile: work + "/verify.out", encoding: .utf8)) ?? "").trimmingCharacters(
            in: .whitespacesAndNewlines)
        print(
            "offline (anonreg audit verify --state-dir): exit \(status) in \(String(format: "%.2f", offlineSeconds)) s = "
                + "\(Int(Double(online.entries) / offlineSeconds)) entries/s, peak RSS \(ResultsWriter.mib(maxRSS)): \(output)")

        let result = AuditBenchReport(
            kind: "bench-audit", machine: Machine.current(loadBefore: loadBefore), entries: online.entries, checkpoints: online.checkpoints,
            fillSeconds: fillSeconds, fillPerSecond: Double(entries) / fillSeconds, writers: writers, databaseBytes: dbBytes,
            inProcessVerifySeconds: onlineSeconds, inProcessVerifyPerSecond: Double(online.entries) / onlineSeconds, inProcessOK: online.ok,
            offlineVerifySeconds: offlineSeconds, offlineVerifyPerSecond: Double(online.entries) / offlineSeconds,
            offlineExitStatus: Int(status),
            offlineVerifyPeakRSSBytes: maxRSS, offlineOutput: output)
        var md =
            "## anonreg-bench audit\n\nMachine: \(result.machine.cpus) CPUs (\(result.machine.cpuModel)); load average before \(loadBefore), after \(result.machine.loadAfter).\n\n"
        md += "| measure | value |\n|---|---:|\n"
        md += "| entries (signed checkpoints) | \(result.entries) (\(result.checkpoints)) |\n"
        md +=
            "| fill through `appendAudit`, \(writers) writers | \(String(format: "%.1f", fillSeconds)) s, \(Int(result.fillPerSecond))/s |\n"
        md += "| database size | \(ResultsWriter.mib(dbBytes)) (\(dbBytes / max(1, result.entries)) B/entry) |\n"
        md +=
            "| `verifyAudit` in process | \(String(format: "%.2f", onlineSeconds)) s, \(Int(result.inProcessVerifyPerSecond)) entries/s, \(online.ok ? "OK" : "FAILED") |\n"
        md +=
            "| `anonreg audit verify --state-dir` | \(String(format: "%.2f", offlineSeconds)) s, \(Int(result.offlineVerifyPerSecond)) entries/s, exit \(status), peak RSS \(ResultsWriter.mib(maxRSS)) |\n"
        print("\n" + md)
        let path = try ResultsWriter.write(result, markdown: md, dir: common.results, kind: "audit")
        print("results: \(path)")
    }
}

struct AuditBenchReport: Codable, Sendable {
    var kind: String
    var machine: Machine
    var entries: Int
    var checkpoints: Int
    var fillSeconds: Double
    var fillPerSecond: Double
    var writers: Int
    var databaseBytes: Int
    var inProcessVerifySeconds: Double
    var inProcessVerifyPerSecond: Double
    var inProcessOK: Bool
    var offlineVerifySeconds: Double
    var offlineVerifyPerSecond: Double
    var offlineExitStatus: Int
    var offlineVerifyPeakRSSBytes: Int
    var offlineOutput: String
}

extension DaemonProcess {
    /// Runs a program to completion; returns its exit status and peak RSS (bytes, from wait4).
    static func runMeasured(_ executable: String, _ arguments: [String], output: String) throws -> (Int32, Int) {
        let pid = try spawn(executable, arguments, output: output)
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) == -1 && errno == EINTR {}
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, Int(usage.ru_maxrss) * 1024)
    }
}
