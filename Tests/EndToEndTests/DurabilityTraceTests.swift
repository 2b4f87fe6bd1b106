import AnonregTestSupport
import Foundation
import Testing

/// Invariant 5 without a power cut (issue 14 §5): the daemon runs under strace while
/// acknowledged writes are sent one at a time. For every 2xx answer that follows a write to the
/// WAL, an fdatasync/fsync of the WAL must have *started* after that write's last pwrite to the
/// WAL completed, and finished before the answer's first byte is written to the socket. The same
/// check run with the writer at `synchronous=NORMAL` (a debug-build-only switch,
/// ANONREG_TEST_SYNCHRONOUS) must find the answers unsynced, so the check itself is shown to work.
@Suite(.serialized) struct DurabilityTraceTests {
    /// One event of the trace, in the order strace saw it.
    enum Event: Equatable {
        /// A pwrite to the WAL completed.
        case walWrite
        /// A sync of the WAL started (per thread: it covers writes completed before it).
        case syncStart(tid: Int)
        /// That thread's sync of the WAL completed successfully.
        case syncDone(tid: Int)
        /// An HTTP answer with this status started to be written to a socket.
        case answer(status: Int)
    }

    /// The events of an strace -f -y log (calls split into "<unfinished ...>" and
    /// "<... resumed>" halves included).
    static func events(_ log: String) -> [Event] {
        var out: [Event] = []
        var pending: [Int: String] = [:]  // tid → the unfinished call's first half
        for raw in log.split(separator: "\n") {
            let line = String(raw)
            guard let space = line.firstIndex(of: " "), let tid = Int(line[..<space]) else { continue }
            // strace pads the pid column ("6080  pwrite64(…" and "27590 pwrite64(…").
            let body = String(line[line.index(after: space)...].drop { $0 == " " })
            if body.hasSuffix("<unfinished ...>") {
                pending[tid] = body
                if let answer = answerStatus(body) { out.append(.answer(status: answer)) }
                if isWALSync(body) { out.append(.syncStart(tid: tid)) }
                continue
            }
            var call = body
            if body.hasPrefix("<... ") {
                guard let first = pending.removeValue(forKey: tid) else { continue }
                let rest = body[(body.range(of: "resumed>")?.upperBound ?? body.endIndex)...]
                call = first.replacingOccurrences(of: "<unfinished ...>", with: "") + rest
                if isWALWrite(call) && succeeded(call) { out.append(.walWrite) }
                if isWALSync(call) && succeeded(call) { out.append(.syncDone(tid: tid)) }
                continue
            }
            if let answer = answerStatus(call) { out.append(.answer(status: answer)) }
            if isWALWrite(call) && succeeded(call) { out.append(.walWrite) }
            if isWALSync(call) {
                out.append(.syncStart(tid: tid))
                if succeeded(call) { out.append(.syncDone(tid: tid)) }
            }
        }
        return out
    }

    static func isWALWrite(_ call: String) -> Bool {
        (call.hasPrefix("pwrite64(") || call.hasPrefix("pwritev(") || call.hasPrefix("pwritev2(") || call.hasPrefix("write("))
            && call.contains("-wal>")
    }

    static func isWALSync(_ call: String) -> Bool {
        (call.hasPrefix("fdatasync(") || call.hasPrefix("fsync(")) && call.contains("-wal>")
    }

    static func succeeded(_ call: String) -> Bool {
        guard let equals = call.range(of: ") = ", options: .backwards) else { return false }
        return !call[equals.upperBound...].hasPrefix("-")
    }

    /// The status of an HTTP answer written to a socket, from the call's first bytes.
    static func answerStatus(_ call: String) -> Int? {
        guard call.hasPrefix("write(") || call.hasPrefix("writev(") || call.hasPrefix("sendmsg(") || call.hasPrefix("sendto("),
            call.contains("<socket:[") || call.contains("<UNIX"), let http = call.range(of: "HTTP/1.1 ")
        else { return nil }
        return Int(call[http.upperBound...].prefix(3))
    }

    struct Verdict {
        /// 2xx answers that had WAL writes since the previous answer.
        var writeAnswers = 0
        /// Of those, the ones sent with a WAL write not yet synced.
        var unsynced = 0
    }

    /// Replays the events: a WAL write is covered by a sync of any thread that started after it
    /// completed and has finished.
    static func check(_ events: [Event]) -> Verdict {
        var verdict = Verdict()
        var unsyncedWrites: [Int] = []  // event positions of completed, not yet covered WAL writes
        var syncStarts: [Int: Int] = [:]
        var wroteSinceAnswer = false
        for (position, event) in events.enumerated() {
            switch event {
            case .walWrite:
                unsyncedWrites.append(position)
                wroteSinceAnswer = true
            case .syncStart(let tid):
                syncStarts[tid] = position
            case .syncDone(let tid):
                if let started = syncStarts.removeValue(forKey: tid) { unsyncedWrites.removeAll { $0 < started } }
            case .answer(let status):
                if (200..<300).contains(status) && wroteSinceAnswer {
                    verdict.writeAnswers += 1
                    if !unsyncedWrites.isEmpty { verdict.unsynced += 1 }
                }
                wroteSinceAnswer = false
            }
        }
        return verdict
    }

    /// Runs the daemon under strace, sends `writes` acknowledged writes one at a time, and
    /// returns the verdict and how many 2xx write answers the client saw.
    static func traced(synchronous: String?) throws -> (verdict: Verdict, acknowledged: Int, events: Int) {
        let h = try DaemonHarness()
        let trace = h.tmp.sub("strace.log")
        var env: [String: String] = [:]
        if let synchronous { env["ANONREG_TEST_SYNCHRONOUS"] = synchronous }
        try h.start(
            environment: env,
            launcher: [
                "/usr/bin/strace", "-f", "-qq", "-y", "-s", "48", "-o", trace,
                "-e", "trace=pwrite64,pwritev,pwritev2,write,writev,sendmsg,sendto,fsync,fdatasync",
            ])
        var acknowledged = 0
        func send(_ method: String, _ path: String, _ body: String? = nil) throws -> DaemonHarness.Reply {
            let reply = try h.request(method, path, body: body)
            if (200..<300).contains(reply.status) { acknowledged += 1 }
            return reply
        }
        // Every request is answered before the next is sent: each answer's window holds only
        // its own writes (and those of background work, which must be synced too).
        for i in 0..<6 {
            let enrol = try send("POST", "/v1/subjects", DaemonHarness.enrolBody())
            let handle = try #require(enrol.string("case"))
            #expect(
                try send(
                    "POST", "/v1/cases/\(handle)/checkups", "{\"on\":\"2026-02-0\(i + 1)\",\"outcome\":\"remission\",\"note\":\"n\(i)\"}"
                ).status == 201)
            #expect(try send("POST", "/v1/cases/\(handle)/code").status == 201)
            #expect(try send("POST", "/v1/episodes/anonymous", "{\"category\":\"dependence\",\"on\":\"2026-02-01\"}").status == 201)
            #expect(try send("POST", "/v1/cases/\(handle)/withdraw").status == 200)
        }
        // Stop the daemon itself (strace, its parent, then ends with it).
        let strace = try #require(h.pid)
        let daemon = try #require(Self.child(of: strace))
        kill(daemon, SIGTERM)
        #expect(h.stop(signal: 0) == 0)
        let log = try String(contentsOfFile: trace, encoding: .utf8)
        let events = Self.events(log)
        return (check(events), acknowledged, events.count)
    }

    /// The first child of `pid` (the daemon strace started).
    static func child(of pid: pid_t) -> pid_t? {
        for _ in 0..<100 {
            if let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8),
                let first = text.split(separator: " ").first, let child = pid_t(first)
            {
                return child
            }
            usleep(10_000)
        }
        return nil
    }

    @Test func everyAcknowledgedWriteIsSyncedBeforeItsAnswer() throws {
        let (verdict, acknowledged, events) = try Self.traced(synchronous: nil)
        #expect(acknowledged == 30)
        #expect(
            verdict.writeAnswers >= acknowledged,
            "the trace shows \(verdict.writeAnswers) answers after WAL writes for \(acknowledged) acknowledged writes (\(events) events)")
        #expect(verdict.unsynced == 0, "\(verdict.unsynced) of \(verdict.writeAnswers) answers were sent before the WAL was fsynced")
    }

    /// The check is not vacuous: with the writer at synchronous=NORMAL it finds the answers sent
    /// with their WAL writes unsynced.
    @Test func theCheckCatchesSynchronousNormal() throws {
        let (verdict, acknowledged, _) = try Self.traced(synchronous: "NORMAL")
        #expect(acknowledged == 30)
        #expect(verdict.writeAnswers >= acknowledged)
        // Withdrawals truncate the WAL (wal_checkpoint(TRUNCATE) syncs it) before they answer, and
        // a background checkpoint may sync some more; the other writes go out unsynced.
        #expect(
            verdict.unsynced >= acknowledged / 2,
            "only \(verdict.unsynced) of \(verdict.writeAnswers) answers were found unsynced under NORMAL")
    }

    @Test func theParserFollowsSplitCalls() {
        let log = """
            10  pwrite64(7</s/registry.sqlite-wal>, "\\0"..., 4096, 32) = 4096
            11 fdatasync(7</s/registry.sqlite-wal> <unfinished ...>
            12 writev(15<UNIX-STREAM:[1->2]>, [{iov_base="HTTP/1.1 201 Created\\r\\n"...}], 1 <unfinished ...>
            11 <... fdatasync resumed>) = 0
            12 <... writev resumed>) = 120
            10 pwrite64(7</s/registry.sqlite-wal>, "\\0"..., 4096, 4128) = 4096
            10 fdatasync(7</s/registry.sqlite-wal>) = 0
            12 write(15<UNIX-STREAM:[1->2]>, "HTTP/1.1 200 OK\\r\\n"..., 90) = 90
            """
        #expect(
            Self.events(log) == [
                .walWrite, .syncStart(tid: 11), .answer(status: 201), .syncDone(tid: 11),
                .walWrite, .syncStart(tid: 10), .syncDone(tid: 10), .answer(status: 200),
            ])
        // The first answer started before its sync finished: unsynced. The second was synced.
        let verdict = Self.check(Self.events(log))
        #expect(verdict.writeAnswers == 2 && verdict.unsynced == 1)
    }
}
