import Foundation
import RegistryProtocol
import Testing

/// The due list is written to bytes directly (`DueResponse.jsonBytes`), not through
/// `JSONEncoder`: the bytes must be the ones the server's encoder writes (sorted keys, slashes
/// unescaped; RegistryServer's `JSONBodies.encoder`), so clients see no change.
struct DueResponseJSONTests {
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static func encoded(_ response: DueResponse) throws -> [UInt8] { Array(try encoder.encode(response)) }

    @Test func aRealisticListIsTheEncodersBytes() throws {
        let day = Day("2027-01-01")!
        var cases: [DueCaseWire] = []
        for i in 0..<300 {
            let hex = String(format: "%032x", i * 7919)
            cases.append(DueCaseWire(case: "case_" + hex, nextCheckupDue: day.adding(days: i % 40), status: i % 3 == 0 ? "due" : "active"))
        }
        for response in [
            DueResponse(before: day, cases: []), DueResponse(before: day, cases: Array(cases.prefix(1))),
            DueResponse(before: day, cases: cases),
        ] {
            #expect(response.jsonBytes() == (try Self.encoded(response)))
        }
    }

    /// The strings a due list holds are a case handle, a date and a status word, none of which
    /// needs escaping; the writer still escapes as the encoder does, so that a change upstream
    /// can never make it write invalid JSON.
    @Test(arguments: [
        "plain", "quote \" inside", "back\\slash", "slash / kept", "new\nline", "tab\tand\rreturn", "bell \u{07} and \u{1F}",
        "back\u{08}space form\u{0C}feed", "nul \u{00} byte", "кириллица", "emoji 🙂", "del \u{7F}", "",
    ])
    func everyStringIsEscapedAsTheEncoderDoes(_ text: String) throws {
        let response = DueResponse(
            before: Day("2027-01-01")!, cases: [DueCaseWire(case: text, nextCheckupDue: Day("2027-01-02")!, status: text)])
        let written = response.jsonBytes()
        #expect(String(decoding: written, as: UTF8.self) == String(decoding: try Self.encoded(response), as: UTF8.self))
        #expect(try JSONDecoder().decode(DueResponse.self, from: Data(written)) == response)
    }
}
