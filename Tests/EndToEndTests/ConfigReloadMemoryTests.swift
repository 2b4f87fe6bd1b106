import AnonregTestSupport
import Foundation
import Testing

/// Issue 23 §6: the configuration parser leaked about 12 KB on every reload (TOMLKit 0.6.0).
/// 1,000 SIGHUP reloads of the real daemon must leave its resident memory flat.
@Suite(.serialized) struct ConfigReloadMemoryTests {
    static func residentKiB(_ pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }

    /// Sends SIGHUP and waits for the reload's log line (signals would coalesce otherwise).
    static func reload(_ daemon: DaemonHarness, pid: pid_t, done: inout Int) throws {
        kill(pid, SIGHUP)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let count = daemon.log.text.components(separatedBy: "configuration reloaded").count - 1
            if count > done {
                done = count
                return
            }
            usleep(500)
        }
        throw DaemonHarness.HarnessError.requestFailed("reload \(done + 1) was not logged")
    }

    @Test func thousandReloadsKeepMemoryFlat() throws {
        let daemon = try DaemonHarness()
        try daemon.start()
        defer { daemon.stop() }
        let pid = try #require(daemon.pid)
        var done = 0
        for _ in 0..<100 { try Self.reload(daemon, pid: pid, done: &done) }
        let warm = try #require(Self.residentKiB(pid))
        for _ in 0..<1000 { try Self.reload(daemon, pid: pid, done: &done) }
        let after = try #require(Self.residentKiB(pid))
        print("limits: RSS after 100 reloads \(warm) KiB, after 1,100 \(after) KiB (+\(after - warm) KiB for 1,000)")
        // TOMLKit 0.6.0 leaked about 12 KB a parse: some 12,000 KiB for 1,000 reloads.
        #expect(after - warm < 2048, "RSS grew \(after - warm) KiB over 1,000 reloads")
        #expect(try daemon.request("GET", "/v1/health").status == 200)
    }
}
