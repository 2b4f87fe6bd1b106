import AnonregTestSupport
import Foundation
import RegistryKeyring
import RegistryProtocol
import Testing

@testable import RegistryCore
@testable import RegistryStore

/// The online migration that seals a monitoring summary for every subject written before the
/// summary existed (docs/STORAGE.md §Summary). A child process runs it three subjects per
/// transaction and is SIGKILLed at random moments; each restart resumes where the last
/// committed batch ended, no summary is lost or half-written, and at the end every subject's
/// summary is the one its history computes.
struct SummaryBackfillTests {
    static let clinic = ThreeYearSimulationTests.clinic

    @Test(.timeLimit(.minutes(20))) func aBackfillKilledAtRandomResumesAndFinishes() async throws {
        let tmp = TemporaryDirectory()
        let subjects = 600
        let handles = try await Self.registryWithoutSummaries(tmp, subjects: subjects)
        let database = tmp.sub("registry.sqlite")
        func missing() throws -> Int {
            let result = try Binaries.runExecutable("/usr/bin/sqlite3", [database, "SELECT count(*) FROM subject WHERE summary IS NULL"])
            return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        #expect(try missing() == subjects)

        var left = subjects
        var killedPartWay = 0
        var finished = false
        for round in 0..<30 where !finished {
            let out = tmp.sub("backfill-\(round).out")
            let child = try Spawned.start(
                Binaries.path("anonreg-store-crash-helper"), ["backfill", tmp.path, "3"], stdout: out, stderr: tmp.sub("backfill.err"))
            // Later rounds get longer, so the run ends even on a slow machine.
            usleep(UInt32(Int.random(in: 50...400) * 1000 * (1 + round / 5)))
            child.signal(SIGKILL)
            let status = child.wait()
            let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
            if status != 128 + SIGKILL {
                #expect(
                    status == 0, "the backfill failed: \((try? String(contentsOfFile: tmp.sub("backfill.err"), encoding: .utf8)) ?? "")")
                #expect(text.contains("done"))
                finished = true
            }
            let now = try missing()
            // Nothing built is ever lost, and a kill leaves no batch half-done.
            #expect(now <= left, "round \(round): summaries went missing again (\(left) → \(now))")
            if status == 128 + SIGKILL, now > 0, now < subjects, now < left { killedPartWay += 1 }
            left = now
        }
        #expect(finished, "the backfill never finished")
        #expect(killedPartWay > 0, "no kill landed while the backfill was making progress")
        #expect(try missing() == 0)

        let keyring = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        let store = try SQLiteRegistryStore(path: database, keyring: keyring)
        defer { try? store.close() }
        #expect(try await store.integrityCheck() == "ok")
        let service = MonitoringService(storage: store, rules: ThreeYearSimulationTests.rules, clock: FixedDayClock(Day("2026-09-01")!))
        for handle in handles {
            try await SummaryEquivalenceTests.expectSummaryMatchesHistory(
                store, handle, clinic: Self.clinic, service: service, context: "backfilled")
        }
        #expect(try await store.checkIntegrity(actor: "test").failures == 0)
    }

    /// `subjects` subjects with up to five check-ups each, then every summary cleared: the
    /// state a database written before `v5-sealed-summary` is in once migrated.
    static func registryWithoutSummaries(_ tmp: TemporaryDirectory, subjects: Int) async throws -> [CaseHandle] {
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let store = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring)
        let clock = FixedDayClock(Day("2026-01-01")!)
        let service = MonitoringService(storage: store, rules: ThreeYearSimulationTests.rules, clock: clock)
        let body =
            "{\"consent\":{\"form\":\"F\",\"givenOn\":\"2026-01-01\",\"method\":\"written\",\"scope\":[\"monitoring\",\"statistics\"]},\"category\":\"sim\",\"enrolledOn\":\"2026-01-01\"}"
        var handles = [CaseHandle?](repeating: nil, count: subjects)
        try await ThreeYearSimulationTests.parallel((0..<subjects).map { ($0, body) }) { body in
            try await service.enrol(clinic: clinic, try JSONDecoder().decode(EnrolRequest.self, from: Data(body.utf8))).case
        } apply: { i, text in
            handles[i] = CaseHandle(text)
        }
        let outcomes: [CheckupOutcome] = [.remission, .relapse, .missed, .other]
        for month in 1...5 {
            let day = Day("2026-01-01")!.adding(days: 30 * month)
            clock.set(day)
            let visits = handles.enumerated().filter { $0.offset % 6 >= month }.map { ($0.offset, $0.element!) }
            try await ThreeYearSimulationTests.parallel(visits) { handle in
                let outcome = outcomes[((handle.text.utf8.last.map(Int.init) ?? 0) + month) % outcomes.count]
                let request = try JSONDecoder().decode(
                    CheckupRequest.self, from: Data("{\"on\":\"\(day)\",\"outcome\":\"\(outcome.rawValue)\"}".utf8))
                _ = try await service.addCheckup(clinic: clinic, case: handle, request)
                return 0
            } apply: { _, _ in
            }
        }
        try store.close()
        let cleared = try Binaries.runExecutable("/usr/bin/sqlite3", [tmp.sub("registry.sqlite"), "UPDATE subject SET summary = NULL"])
        #expect(cleared.status == 0)
        return handles.map { $0! }
    }
}
