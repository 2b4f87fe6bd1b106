import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryStore

/// Invariant 5: acknowledged means durable. A child process appends check-ups from 8
/// concurrent writers and prints each token once its write returned; it is SIGKILLed at a random
/// moment, 20 times. After each kill, every acknowledged token is in the database and
/// `PRAGMA integrity_check` is ok.
struct CrashTests {
    @Test func sigkillLosesNoAcknowledgedWrite() async throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        var acknowledged: [String: Set<String>] = [:]  // case handle -> tokens
        var totalAcks = 0
        for round in 0..<20 {
            // On a loaded machine the helper may not have enrolled yet when the kill comes: try
            // again with a longer run (the point is a kill in the middle of acknowledged writes).
            var run = try Self.runAndKill(stateDir: tmp.path, afterMilliseconds: Int.random(in: 150...600))
            var wait = 1200
            while run.0 == nil, wait <= 9600 {
                run = try Self.runAndKill(stateDir: tmp.path, afterMilliseconds: wait)
                wait *= 2
            }
            let (handle, tokens) = run
            guard let handle else {
                Issue.record("round \(round): the helper never enrolled")
                continue
            }
            acknowledged[handle, default: []].formUnion(tokens)
            totalAcks += tokens.count

            let store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
            #expect(try await store.integrityCheck() == "ok", "round \(round)")
            for (text, expected) in acknowledged {
                let view = try await store.subject(case: CaseHandle(text)!, clinic: ClinicID("crash")!)
                let stored = Set(view.records(of: .checkup).map { String(decoding: $0.plaintext, as: UTF8.self) })
                let lost = expected.subtracting(stored)
                #expect(lost.isEmpty, "round \(round): \(lost.count) acknowledged writes lost")
            }
            try store.close()
        }
        #expect(totalAcks > 100, "the helper acknowledged only \(totalAcks) writes in 20 rounds")
    }

    /// Starts the helper, kills it with SIGKILL after `afterMilliseconds`, and returns the case it
    /// enrolled and every token it acknowledged on a complete line.
    static func runAndKill(stateDir: String, afterMilliseconds: Int) throws -> (String?, Set<String>) {
        let outPath = stateDir + "/helper-\(UUID().uuidString).out"
        let child = try Spawned.start(
            Binaries.path("anonreg-store-crash-helper"), [stateDir, "8"], stdout: outPath,
            stderr: stateDir + "/helper.err")
        usleep(UInt32(afterMilliseconds * 1000))
        child.signal(SIGKILL)
        let status = child.wait()
        #expect(
            status == 128 + SIGKILL,
            "the helper exited by itself: \((try? String(contentsOfFile: stateDir + "/helper.err", encoding: .utf8)) ?? "")")
        let text = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: outPath)
        var handle: String? = nil
        var tokens = Set<String>()
        // Only complete lines count: a torn last line is ignored (its write was acknowledged,
        // but not fully reported).
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            if line.hasPrefix("case ") { handle = String(line.dropFirst(5)) }
            if line.hasPrefix("ack ") { tokens.insert(String(line.dropFirst(4))) }
        }
        return (handle, tokens)
    }
}
