import AnonregTestSupport
import Foundation
import Testing

/// Issue 8, disk full: the state directory sits on an 8 MiB tmpfs (or, where mounting is not
/// permitted, the daemon runs under RLIMIT_FSIZE). Once the disk is full, writes answer 507
/// `storage_full` and store nothing, reads keep answering and are audited (in the room the
/// released space reserve freed), health keeps answering, nothing acknowledged is lost, and the
/// daemon takes writes again as soon as space returns, without a restart.
@Suite(.serialized) struct DiskFullTests {
    @Test func fullDiskAnswers507AndRecoversWhenSpaceReturns() throws {
        var mounted = false
        // A 1 MiB space reserve on the tmpfs; none under RLIMIT_FSIZE (it limits each file, not
        // the disk, so releasing a reserve frees nothing there).
        let d = try DaemonHarness(
            configure: { text in
                text.replacingOccurrences(of: "space_reserve_mib = 8", with: "space_reserve_mib = \(mounted ? 1 : 0)")
            },
            beforeInit: { dir in
                mkdir(dir, 0o750)
                let mount = try Binaries.runExecutable("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=8m,mode=0750", "tmpfs", dir])
                mounted = mount.status == 0
            })
        defer {
            d.stop(signal: SIGKILL)
            if mounted { _ = try? Binaries.runExecutable("/usr/bin/umount", ["-l", d.stateDir]) }
        }
        let client = OneShotSocketClient(socketPath: d.socket)
        let filler = d.stateDir + "/filler"
        let reserve = d.stateDir + "/.space-reserve"
        if mounted {
            try d.start()
        } else {
            // Fallback: every file the daemon writes may grow only a little past its size now.
            let biggest = d.tmp.allFiles().filter { $0.hasPrefix(d.stateDir) }.map { d.tmp.bytes(of: $0).count }.max() ?? 0
            try d.start(launcher: ["/usr/bin/prlimit", "--fsize=\(biggest + 256 * 1024)"])
        }

        // Acknowledged before the disk fills.
        var acknowledged: [String: [String]] = [:]
        for i in 0..<10 {
            let enrol = try client.send("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
            let handle = try #require(enrol.string("case"), "\(enrol.status) \(enrol.body)")
            let note = "before-full-\(i)"
            #expect(try client.send("POST", "/v1/cases/\(handle)/checkups", body: Self.checkup(note)).status == 201)
            acknowledged[handle] = [note]
        }

        if mounted {
            #expect(d.tmp.bytes(of: reserve).count == 1024 * 1024, "the daemon did not create its 1 MiB space reserve")
            Self.fill(filler)
        }

        // Writes until the registry refuses five in a row; each answer is 201 (space was still
        // found in the WAL or free pages: then it is acknowledged) or 507 storage_full.
        var refused = 0
        var consecutive = 0
        var accepted = 0
        for i in 0..<2000 where consecutive < 5 {
            let enrol = try client.send("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
            if enrol.status == 201, let handle = enrol.string("case") {
                acknowledged[handle] = []
                accepted += 1
                consecutive = 0
                let note = "while-full-\(i)"
                let checkup = try client.send("POST", "/v1/cases/\(handle)/checkups", body: Self.checkup(note))
                if checkup.status == 201 {
                    acknowledged[handle]?.append(note)
                } else {
                    #expect(checkup.status == 507 && checkup.errorCode == "storage_full", "\(checkup.status) \(checkup.body)")
                }
                continue
            }
            #expect(enrol.status == 507, "\(enrol.status) \(enrol.body)")
            #expect(enrol.errorCode == "storage_full", "\(enrol.body)")
            refused += 1
            consecutive += 1
        }
        #expect(consecutive == 5, "the registry never refused a write on a full disk (\(accepted) accepted)")

        // Reads on a full disk: health needs no disk. A data read is answered only if its audit
        // entry can be written (invariant 6). With the reserve released (tmpfs) every read is
        // answered and audited; without one (RLIMIT_FSIZE) it is 200 or 507 storage_full.
        #expect(try client.send("GET", "/v1/health").status == 200)
        let (anyHandle, _) = try #require(acknowledged.first)
        let auditBefore = try d.auditEntryCount()
        var reads: [Int] = []
        for (handle, _) in acknowledged.prefix(10) {
            let status = try client.send("GET", "/v1/cases/\(handle)")
            let checkups = try client.send("GET", "/v1/cases/\(handle)/checkups")
            reads += [status.status, checkups.status]
            if mounted {
                #expect(status.status == 200, "read while full: \(status.status) \(status.body)")
                #expect(checkups.status == 200, "read while full: \(checkups.status) \(checkups.body)")
            } else {
                for answer in [status, checkups] {
                    #expect(
                        answer.status == 200 || (answer.status == 507 && answer.errorCode == "storage_full"),
                        "\(answer.status) \(answer.body)")
                }
            }
        }
        let auditWhileFull = try d.auditEntryCount() - auditBefore
        let read = try client.send("GET", "/v1/cases/\(anyHandle)")
        if mounted {
            #expect(auditWhileFull >= reads.count, "\(reads.count) reads while full wrote only \(auditWhileFull) audit entries")
            #expect(!FileManager.default.fileExists(atPath: reserve), "the space reserve was not released")
            let metrics = try client.send("GET", "/metrics")
            #expect(
                metrics.body.contains("anonreg_storage_full 1"),
                "\(metrics.body.split(separator: "\n").filter { $0.contains("storage_full") })")
            // Still full: a write is refused up front.
            let refusedAgain = try client.send("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
            #expect(refusedAgain.status == 507 && refusedAgain.errorCode == "storage_full", "\(refusedAgain.status) \(refusedAgain.body)")
        }
        print(
            "disk-full: mounted-tmpfs=\(mounted) accepted-after-fill=\(accepted) refused=\(refused) read-while-full=\(read.status) "
                + "reads-while-full=\(reads.count) ok=\(reads.filter { $0 == 200 }.count) audited-while-full=\(auditWhileFull)")

        // Space returns: the next write succeeds with no restart (tmpfs) or after one (rlimit).
        if mounted {
            try FileManager.default.removeItem(atPath: filler)
        } else {
            #expect(d.stop() == 0)
            try d.start()
        }
        let after = try client.send("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
        #expect(after.status == 201, "\(after.status) \(after.body)")
        if mounted {
            #expect(d.tmp.bytes(of: reserve).count == 1024 * 1024, "the space reserve was not recreated")
            let metrics = try client.send("GET", "/metrics")
            #expect(
                metrics.body.contains("anonreg_storage_full 0"),
                "\(metrics.body.split(separator: "\n").filter { $0.contains("storage_full") })")
        }

        // Nothing acknowledged was lost, in the running daemon and after a restart.
        for round in 0..<2 {
            for (handle, notes) in acknowledged {
                let answer = try client.send("GET", "/v1/cases/\(handle)/checkups")
                #expect(answer.status == 200, "round \(round): \(answer.status) \(answer.body)")
                let stored = Set(((answer.json?["checkups"] as? [[String: Any]]) ?? []).compactMap { $0["note"] as? String })
                #expect(Set(notes).isSubset(of: stored), "round \(round): lost \(Set(notes).subtracting(stored))")
            }
            if round == 0 {
                #expect(d.stop() == 0)
                try d.start()
            }
        }
        let integrity = try Binaries.runExecutable("/usr/bin/sqlite3", [d.stateDir + "/registry.sqlite", "PRAGMA integrity_check"])
        #expect(integrity.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "ok", "\(integrity.stdout)")
        #expect(d.stop() == 0)
    }

    static func checkup(_ note: String) -> String {
        "{\"on\":\"2026-02-01\",\"outcome\":\"remission\",\"substances\":[],\"treatment\":[],\"note\":\"\(note)\"}"
    }

    /// Writes zeros until the file system says ENOSPC.
    static func fill(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0, count: 4096)
        while chunk.withUnsafeBytes({ write(fd, $0.baseAddress!, $0.count) }) > 0 {}
    }
}
