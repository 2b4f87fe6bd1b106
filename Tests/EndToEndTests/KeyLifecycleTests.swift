import Foundation
import Testing
import AnonregTestSupport

/// KEK rotation, rewrap, retire and destroy through `anonreg keys`, with the daemon serving.
@Suite(.serialized) struct KeyLifecycleTests {
    @Test func rotateRewrapRetireDestroy() async throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        var env = ProcessInfo.processInfo.environment
        env["ANONREG_SOCKET"] = d.socket
        func anonreg(_ args: [String]) throws -> Binaries.Result { try Binaries.run("anonreg", args, environment: env) }

        var handles: [String] = []
        for _ in 0..<150 {
            let r = try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody())
            handles.append(try #require(r.string("case")))
        }
        let rotated = try anonreg(["keys", "rotate"])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(rotated.stdout.contains("primary: 2"))
        // Retiring version 1 while subjects use it is refused, names the count, changes nothing.
        let refused = try anonreg(["keys", "retire", "1"])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("150 subject(s) still use it"))
        #expect(try String(contentsOfFile: d.stateDir + "/keys/keyring.json", encoding: .utf8).contains("\"status\" : \"active\""))

        // Rewrap in small batches while another task keeps enrolling and reading.
        let harness = d
        let load = Task.detached {
            var made: [String] = []
            for _ in 0..<60 {
                if let r = try? harness.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()), let h = r.string("case") { made.append(h) }
                _ = try? harness.request("GET", "/v1/due")
            }
            return made
        }
        let rewrap = try anonreg(["keys", "rewrap", "--batch-size", "20"])
        #expect(rewrap.status == 0, "\(rewrap.stderr)")
        #expect(rewrap.stdout.split(separator: "\n").last?.contains("\"remaining\":0") == true)
        handles += await load.value

        let status = try anonreg(["keys", "status", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        let versions = try #require(json?["versions"] as? [[String: Any]])
        #expect(versions.first?["subjects"] as? Int == 0)
        #expect(versions.last?["subjects"] as? Int == handles.count)

        #expect(try anonreg(["keys", "retire", "1"]).status == 0)
        let notConfirmed = try anonreg(["keys", "destroy", "1"])
        #expect(notConfirmed.status == 3, "no typed confirmation on stdin")
        #expect(FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-1.key"))
        #expect(try anonreg(["keys", "destroy", "1", "--yes"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: d.stateDir + "/keys/kek-1.key"))
        // Every subject still reads, after a restart too.
        #expect(d.stop() == 0)
        try d.start()
        for handle in handles {
            #expect(try d.request("GET", "/v1/cases/\(handle)").status == 200)
        }
        #expect(try anonreg(["keys", "destroy", "2", "--yes"]).status == 3, "the primary cannot be destroyed")
    }
}
