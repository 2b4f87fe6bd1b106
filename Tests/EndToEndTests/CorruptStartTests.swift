import AnonregTestSupport
import Foundation
import Testing

/// Issue 8, corrupted files at start: anonregd refuses to start with a clear message on stderr
/// and the documented exit code (docs/OPERATIONS.md §Exit codes: 3 keys, 4 database), and leaves
/// the damaged file byte-for-byte as it found it.
@Suite(.serialized) struct CorruptStartTests {
    struct Corruption: Sendable, CustomTestStringConvertible {
        var name: String
        var file: String  // relative to the state directory
        var exit: Int32
        var message: String  // what stderr must say
        var damage: @Sendable (String) throws -> Void
        var testDescription: String { name }
    }

    static let corruptions: [Corruption] = [
        Corruption(name: "truncated key file", file: "keys/index.key", exit: 3, message: "index.key") { path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        },
        Corruption(name: "truncated KEK file", file: "keys/kek-1.key", exit: 3, message: "kek-1.key") { path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            try bytes.prefix(10).write(to: URL(fileURLWithPath: path))
        },
        Corruption(name: "flipped bit in keyring.json", file: "keys/keyring.json", exit: 3, message: "keyring") { path in
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            // The first digit of the manifest: a version or count that then no longer matches.
            let index = bytes.firstIndex { (0x30...0x39).contains($0) } ?? bytes.count / 2
            bytes[index] ^= 0x04
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        },
        Corruption(name: "garbage registry.sqlite", file: "registry.sqlite", exit: 4, message: "registry.sqlite") { path in
            var generator = SystemRandomNumberGenerator()
            try Data((0..<65536).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: path))
        },
        Corruption(name: "truncated registry.sqlite", file: "registry.sqlite", exit: 4, message: "truncated") { path in
            // A copy cut short: the WAL folded in first, so the cut pages exist nowhere else.
            let fold = try Binaries.runExecutable("/usr/bin/sqlite3", [path, "PRAGMA wal_checkpoint(TRUNCATE)"])
            guard fold.status == 0 else { throw CocoaError(.fileWriteUnknown) }
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        },
        Corruption(name: "wrong application_id", file: "registry.sqlite", exit: 4, message: "another application") { path in
            let set = try Binaries.runExecutable("/usr/bin/sqlite3", [path, "PRAGMA application_id = 1234"])
            guard set.status == 0 else { throw CocoaError(.fileWriteUnknown) }
        },
    ]

    @Test(arguments: corruptions)
    func corruptFileStopsTheStartAndIsLeftUntouched(_ corruption: Corruption) throws {
        let d = try DaemonHarness()
        // A registry with data in it, closed cleanly (the database is checkpointed, no WAL).
        try d.start()
        for _ in 0..<40 {
            #expect(try d.request("POST", "/v1/subjects", body: DaemonHarness.enrolBody()).status == 201)
        }
        #expect(d.stop() == 0)
        let path = d.stateDir + "/" + corruption.file
        try corruption.damage(path)
        chmod(path, 0o600)
        let before = d.tmp.bytes(of: path)
        let listing = d.tmp.listing(d.stateDir)

        let (status, log) = d.startExpectingRefusal()
        #expect(status == corruption.exit, "\(corruption.name): exit \(status.map(String.init) ?? "none (it started)"):\n\(log)")
        #expect(log.contains(corruption.message), "\(corruption.name): stderr does not say \(corruption.message):\n\(log)")
        #expect(!log.contains("Fatal error"), "\(corruption.name): crashed instead of refusing:\n\(log)")
        #expect(d.tmp.bytes(of: path) == before, "\(corruption.name): \(corruption.file) was modified")
        #expect(
            d.tmp.listing(d.stateDir).filter { !$0.hasPrefix("anonreg.sock") } == listing.filter { !$0.hasPrefix("anonreg.sock") },
            "\(corruption.name): files appeared or vanished beside it")
    }
}
