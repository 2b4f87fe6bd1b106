import AnonregTestSupport
import Foundation
import Testing

/// The linkage input profile anonreg-linkage-v1 in the Swift CLI against the shared table
/// docs/linkage-profile-v1.json (the Python client checks the same table), and
/// `anonreg linkage --batch` against the daemon.
@Suite(.serialized) struct LinkageProfileTests {
    struct Table: Decodable {
        struct Group: Decodable {
            var why: String
            var identity: String
            var lines: [String]
        }
        struct Distinct: Decodable {
            var why: String
            var lines: [String]
            var identities: [String]
        }
        struct Refused: Decodable {
            var why: String
            var line: String
            var problem: String
        }
        var profile: String
        var groups: [Group]
        var distinct: [Distinct]
        var refused: [Refused]
    }

    static let table: Table = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = FileManager.default.contents(atPath: root.appendingPathComponent("docs/linkage-profile-v1.json").path)!
        return try! JSONDecoder().decode(Table.self, from: data)
    }()

    /// `anonreg ARGS < input` (standard input from a file).
    static func anonreg(_ arguments: [String], stdin: String, environment: [String: String]? = nil) throws -> Binaries.Result {
        let file = NSTemporaryDirectory() + "anonreg-in-" + UUID().uuidString
        try stdin.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try Binaries.runExecutable(
            "/bin/sh", ["-c", "exec \"$0\" \"$@\" < \"$ANONREG_TEST_STDIN\""] + [Binaries.path("anonreg")] + arguments,
            environment: (environment ?? ProcessInfo.processInfo.environment).merging(["ANONREG_TEST_STDIN": file]) { $1 })
    }

    @Test func everyLineOfTheSharedTableFoldsToItsIdentityString() throws {
        #expect(Self.table.profile == "anonreg-linkage-v1")
        let lines = Self.table.groups.flatMap(\.lines) + Self.table.distinct.flatMap(\.lines)
        let expected = Self.table.groups.flatMap { g in g.lines.map { _ in g.identity } } + Self.table.distinct.flatMap(\.identities)
        let r = try Self.anonreg(["linkage", "--batch", "--identity-only"], stdin: lines.joined(separator: "\n") + "\n")
        #expect(r.status == 0, "\(r.stderr)")
        let got = r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(got.count == expected.count)
        for (i, (g, e)) in zip(got, expected).enumerated() { #expect(g == e, "line \(i + 1): \(lines[i])") }
        for pair in Self.table.distinct { #expect(pair.identities[0] != pair.identities[1], "\(pair.why)") }
    }

    @Test func refusedLinesAreRefusedWithTheirProblemAndNeverEchoed() throws {
        for refused in Self.table.refused {
            let r = try Binaries.run("anonreg", ["linkage", "--fields", refused.line, "--identity-only"])
            #expect(r.status == 2, "\(refused.why): \(r.stdout)")
            #expect(r.stdout.isEmpty)
            #expect(r.stderr.contains("[\(refused.problem)]"), "\(refused.why): \(r.stderr)")
            // The message names the field, never the identity's text.
            for name in refused.line.split(separator: "|") where name.count > 2 {
                #expect(!r.stderr.contains(name), "\(refused.why) echoed \(name)")
            }
        }
    }

    /// Against the daemon: every spelling of a group gives one linkage value, distinct people
    /// give distinct values, and a bad line stops the run before anything is sent.
    @Test func batchLinkageAgreesAcrossSpellingsAndRefusesBeforeSending() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let groups = Self.table.groups
        let r = try Self.anonreg(
            ["linkage", "--batch"], stdin: groups.flatMap(\.lines).joined(separator: "\n") + "\n", environment: d.cliEnvironment)
        #expect(r.status == 0, "\(r.stderr)")
        var values = r.stdout.split(separator: "\n").map(String.init)[...]
        #expect(values.count == groups.flatMap(\.lines).count)
        var perGroup: [String] = []
        for g in groups {
            let mine = Set(values.prefix(g.lines.count))
            values = values.dropFirst(g.lines.count)
            #expect(mine.count == 1, "\(g.why)")
            perGroup += mine
        }
        #expect(Set(perGroup).count == groups.count, "different people, different values")
        #expect(perGroup.allSatisfy { $0.count == 128 && $0.allSatisfy(\.isHexDigit) })
        // The single form gives the same value as the batch.
        let single = try Binaries.run("anonreg", ["linkage", "--fields", groups[0].lines[1], "--json"], environment: d.cliEnvironment)
        #expect(single.stdout == "{\"linkage\":\"\(perGroup[0])\"}\n")
        let evaluations = try d.auditEntryCount()
        // Line 3 is bad: nothing is sent, nothing printed.
        let bad = try Self.anonreg(
            ["linkage", "--batch"], stdin: "Иванов|Пётр|1990-01-31\nIvanov|Petr|1990-01-31\nИванов|Пётр|31.02.1990\n",
            environment: d.cliEnvironment)
        #expect(bad.status == 2)
        #expect(bad.stdout.isEmpty)
        #expect(bad.stderr.contains("line 3:") && bad.stderr.contains("[invalid_date]"), "\(bad.stderr)")
        #expect(try d.auditEntryCount() == evaluations)
    }
}
