/// A body the server writes straight to bytes instead of through `JSONEncoder`.
///
/// The bytes must equal what the server's encoder writes for the same value (sorted keys,
/// slashes unescaped), byte for byte; RegistryProtocolTests checks it on every field.
public protocol JSONWritable {
    func jsonBytes() -> [UInt8]
}

/// `GET /v1/due` (docs/PROTOCOL.md §GET /v1/due). A thousand-case answer through `JSONEncoder`
/// cost about 3 ms, a fifth of the request (docs/PERFORMANCE.md, due list); written directly it
/// is a few hundred microseconds. Keys in sorted order, as the encoder writes them.
extension DueResponse: JSONWritable {
    public func jsonBytes() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32 + cases.count * 96)
        out += #"{"before":"#.utf8
        JSONText.string(before.description, into: &out)
        out += #","cases":["#.utf8
        for (index, due) in cases.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += #"{"case":"#.utf8
            JSONText.string(due.case, into: &out)
            out += #","nextCheckupDue":"#.utf8
            JSONText.string(due.nextCheckupDue.description, into: &out)
            out += #","status":"#.utf8
            JSONText.string(due.status, into: &out)
            out.append(UInt8(ascii: "}"))
        }
        out += "]}".utf8
        return out
    }
}

/// JSON string literals (RFC 8259 §7) as the server's encoder writes them: `"` and `\`
/// escaped, the control characters as `\b \f \n \r \t` or `\u00XX`, everything else (`/`
/// and non-ASCII included) as its UTF-8 bytes.
enum JSONText {
    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func string(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += #"\""#.utf8
            case UInt8(ascii: "\\"): out += #"\\"#.utf8
            case 0x08: out += #"\b"#.utf8
            case 0x0C: out += #"\f"#.utf8
            case 0x0A: out += #"\n"#.utf8
            case 0x0D: out += #"\r"#.utf8
            case 0x09: out += #"\t"#.utf8
            case 0..<0x20:
                out += #"\u00"#.utf8
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
