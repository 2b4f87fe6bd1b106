import Foundation
import RegistryProtocol
import RegistryText
import Testing

@testable import AnonregClinic

/// The CLI says every error anonregd can answer in the user's language (docs/TRANSLATING.md): each
/// wire error code has an `error.<code>` message in every catalogue, and the codes are the ones
/// docs/PROTOCOL.md §5 lists.
struct ErrorCatalogueTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The codes of docs/PROTOCOL.md §5's table (`| \`code\` | status | meaning |`).
    static func documentedCodes() throws -> Set<String> {
        let text = try String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        let start = try #require(text.range(of: "\n## 5. Errors\n"))
        let end = try #require(text.range(of: "\n## 6. ", range: start.upperBound..<text.endIndex))
        let table = try NSRegularExpression(pattern: #"^\| `([a-z_]+)` \| [0-9]{3} \|"#, options: [.anchorsMatchLines])
        let section = String(text[start.upperBound..<end.lowerBound])
        return Set(
            table.matches(in: section, range: NSRange(section.startIndex..., in: section)).compactMap {
                Range($0.range(at: 1), in: section).map { String(section[$0]) }
            })
    }

    /// The error codes the daemon's sources answer with: `APIError(.status, "code", …)`,
    /// `DomainError(.kind, "code", …)`, `code: "…"` (storage rejections, the request deadline's
    /// bodies), `(.status, "code")` pairs, `…ErrorCode = "…"` and `WireError`'s cases.
    static func answeredCodes() throws -> Set<String> {
        let patterns = [
            #"(?:APIError|DomainError)\(\s*\.[A-Za-z]+\s*,\s*"([a-z_]+)""#, #"\bcode:\s*"([a-z_]+)""#,
            #"\(\.[A-Za-z]+,\s*"([a-z_]+)"\)"#, #"ErrorCode\s*=\s*"([a-z_]+)""#, #"case \.[A-Za-z]+:\s*"([a-z_]+)""#,
        ]
        .map { try! NSRegularExpression(pattern: $0) }
        var codes = Set<String>()
        for module in ["RegistryServer", "RegistryCore", "RegistryStore", "RegistryProtocol"] {
            let dir = root.appendingPathComponent("Sources/\(module)")
            let files = try #require(FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil))
            for case let file as URL in files where file.pathExtension == "swift" {
                let text = try String(contentsOf: file, encoding: .utf8)
                for pattern in patterns {
                    // `case .x: "code"` only in WireError, where it lists the wire codes.
                    if pattern.pattern.hasPrefix("case"), file.lastPathComponent != "WireError.swift" { continue }
                    for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                        if let range = Range(match.range(at: 1), in: text) { codes.insert(String(text[range])) }
                    }
                }
            }
        }
        return codes
    }

    @Test func everyAnsweredCodeIsDocumented() throws {
        let answered = try Self.answeredCodes()
        #expect(
            answered.contains("integrity_error") && answered.contains("code_not_found") && answered.contains("unknown_field"),
            "the source scan found \(answered.sorted())")
        let undocumented = answered.subtracting(try Self.documentedCodes()).sorted()
        #expect(undocumented.isEmpty, "answered but not in docs/PROTOCOL.md §5: \(undocumented)")
    }

    @Test func everyWireErrorCodeHasACatalogueEntry() throws {
        let codes = try Self.documentedCodes().union(try Self.answeredCodes())
        #expect(codes.count > 30)
        for language in Language.allCases {
            let missing = codes.filter { Catalogue.table(language)["error.\($0)"] == nil }.sorted()
            #expect(missing.isEmpty, "\(language).catalogue lacks error.\(missing)")
        }
    }

    static func reply(_ status: Int, _ code: String, _ message: String) throws -> UnixHTTPClient.Response {
        UnixHTTPClient.Response(status: status, body: try JSONEncoder().encode(ErrorBody(code: code, message: message)))
    }

    /// An integrity failure (issue 14) is said in Russian, with its code and status, and never as
    /// "no such case": the clinic must not think the patient is gone.
    @Test func integrityErrorIsSaidInEachLanguage() throws {
        let daemon =
            "the registry's data for this request failed an integrity check; nothing was served and the registry's admins are alerted"
        let reply = try Self.reply(500, "integrity_error", daemon)
        let russian = ClinicClient.failure(reply, .ru)
        #expect(russian.exitCode == 1)
        #expect(russian.description == Catalogue.text("error.integrity_error", .ru) + " [integrity_error, HTTP 500]")
        #expect(russian.description.contains("целостности"))
        let english = ClinicClient.failure(reply, .en)
        #expect(english.description == daemon + " [integrity_error, HTTP 500]")
    }

    @Test func sweepNumbersAreSaidInEachLanguage() {
        let quiet = SweepResponseWire(
            reviewed: 3, kept: 1, erasedCompleted: 1, erasedCap: 0, erasedInactive: 0, failed: 0,
            erasedIntegrity: 1, caseLinksRemoved: 2, integritySuspended: 0)
        let russian = SweepCommand.render(quiet, .ru)
        for key in ["sweep.reviewed", "sweep.erasedIntegrity", "sweep.caseLinksRemoved", "sweep.integritySuspended", "sweep.failed"] {
            #expect(russian.contains(Catalogue.text(key, .ru)), "\(key)")
        }
        #expect(!russian.contains("erased"))
        #expect(!russian.contains("\n\n"), "no warning when nothing was left alone")
        // A mass failure is not acted on; the admin is told why, in words, not only as a number.
        let suspended = SweepResponseWire(
            reviewed: 0, kept: 0, erasedCompleted: 0, erasedCap: 0, erasedInactive: 0, failed: 0,
            erasedIntegrity: 0, caseLinksRemoved: 0, integritySuspended: 40)
        for language in Language.allCases {
            let text = SweepCommand.render(suspended, language)
            #expect(text.hasSuffix(Catalogue.text("sweep.suspendedWarning", language, ["count": "40"])), "\(language)")
        }
        let line = SweepCommand.render(suspended, .en).split(separator: "\n").first {
            $0.hasPrefix("integrity failures left alone (too many)")
        }
        #expect(line?.hasSuffix("  40") == true)
    }
}
