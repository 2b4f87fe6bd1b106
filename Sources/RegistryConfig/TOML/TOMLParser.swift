/// A strict TOML 1.0 parser for anonreg.toml (https://toml.io/en/v1.0.0), in Swift.
///
/// It replaces TOMLKit 0.6.0, whose C++ shim calls a member through a null pointer on every
/// non-date value (`CTOML/Node.cpp`, undefined behaviour reached at start and on every reload)
/// and leaks each parsed document, its keys and strings (about 12 KB a parse), with no call to
/// free them (docs/OPERATIONS.md §Configuration). No other TOML library is available to the
/// build, so this one covers what TOML 1.0 defines, except that offset date-times, local
/// date-times, dates and times are refused with a clear message: anonreg.toml has none.
///
/// Everything the specification calls invalid is refused with a line and a column: duplicate
/// keys, a table defined twice, a key added to an inline table or to a table defined by a
/// `[header]` through dotted keys elsewhere, `[[x]]` after `x = [...]`, leading zeros, bad
/// escapes, control characters, and so on.
public enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLValue])
    case table([String: TOMLValue])

    var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .array: "array"
        case .table: "table"
        }
    }
}

/// A syntax error, with the 1-based line and column where it was found.
public struct TOMLSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { "TOML syntax error at line \(line), column \(column): \(message)" }
}

enum TOMLParser {
    /// Parses a whole document into its root table.
    static func parse(_ text: String) throws(TOMLSyntaxError) -> [String: TOMLValue] {
        var parser = Parser(bytes: Array(text.utf8))
        try parser.document()
        return parser.root.value()
    }
}

/// The tables under construction, with what TOML 1.0 needs to know to refuse redefinitions.
private final class TableNode {
    enum Entry {
        case value(TOMLValue)
        case table(TableNode)
        /// `[[x]]` tables; `static` arrays (`x = [...]`) are plain values.
        case tables([TableNode])
    }

    var entries: [String: Entry] = [:]
    /// Defined by a `[header]` of its own (a second one is an error).
    var headerDefined = false
    /// Created by dotted keys (`a.b = 1` creates `a`): may be extended by more dotted keys in the
    /// same table, never by a `[header]`.
    var dottedDefined = false
    /// An inline table: complete as written.
    var frozen = false

    func value() -> [String: TOMLValue] {
        entries.mapValues { entry in
            switch entry {
            case .value(let v): v
            case .table(let t): .table(t.value())
            case .tables(let ts): .array(ts.map { .table($0.value()) })
            }
        }
    }
}

private struct Parser {
    let bytes: [UInt8]
    var i = 0
    var line = 1
    var lineStart = 0
    let root = TableNode()
    lazy var current: TableNode = root

    init(bytes: [UInt8]) { self.bytes = bytes }

    // MARK: Characters

    var atEnd: Bool { i >= bytes.count }
    var peek: UInt8? { i < bytes.count ? bytes[i] : nil }
    func peek(_ offset: Int) -> UInt8? { i + offset < bytes.count ? bytes[i + offset] : nil }

    func fail(_ message: String) -> TOMLSyntaxError {
        TOMLSyntaxError(line: line, column: i - lineStart + 1, message: message)
    }

    mutating func advance() {
        if bytes[i] == 0x0A {
            line += 1
            lineStart = i + 1
        }
        i += 1
    }

    mutating func skipWhitespace() {
        while let c = peek, c == 0x20 || c == 0x09 { i += 1 }
    }

    /// A comment up to (not including) the end of the line; control characters other than tab
    /// are not allowed in it.
    mutating func skipComment() throws(TOMLSyntaxError) {
        guard peek == UInt8(ascii: "#") else { return }
        while let c = peek, c != 0x0A {
            if c == 0x0D, peek(1) == 0x0A { return }
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw fail("control character in a comment") }
            i += 1
        }
    }

    /// The end of a line (LF or CRLF) or of the document; anything else is an error.
    mutating func expectLineEnd() throws(TOMLSyntaxError) {
        skipWhitespace()
        try skipComment()
        guard let c = peek else { return }
        if c == 0x0A {
            advance()
            return
        }
        if c == 0x0D, peek(1) == 0x0A {
            i += 1
            advance()
            return
        }
        throw fail("expected the end of the line")
    }

    /// Whitespace, newlines and comments (inside arrays).
    mutating func skipBlank() throws(TOMLSyntaxError) {
        while true {
            skipWhitespace()
            try skipComment()
            if peek == 0x0A {
                advance()
                continue
            }
            if peek == 0x0D, peek(1) == 0x0A {
                i += 1
                advance()
                continue
            }
            return
        }
    }

    // MARK: Document

    mutating func document() throws(TOMLSyntaxError) {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { i = 3 }
        while true {
            try skipBlank()
            guard let c = peek else { return }
            if c == UInt8(ascii: "[") {
                if peek(1) == UInt8(ascii: "[") { try arrayTableHeader() } else { try tableHeader() }
            } else {
                try keyValue(into: current)
            }
            try expectLineEnd()
        }
    }

    mutating func tableHeader() throws(TOMLSyntaxError) {
        i += 1
        skipWhitespace()
        let keys = try key()
        skipWhitespace()
        guard peek == UInt8(ascii: "]") else { throw fail("expected ] to close the table header") }
        i += 1
        let parent = try descend(root, keys.dropLast(), forHeader: true)
        let last = keys.last!
        switch parent.entries[last] {
        case nil:
            let table = TableNode()
            table.headerDefined = true
            parent.entries[last] = .table(table)
            current = table
        case .table(let table):
            guard !table.headerDefined, !table.dottedDefined, !table.frozen else {
                throw fail("table [\(keys.joined(separator: "."))] is defined twice")
            }
            table.headerDefined = true
            current = table
        default:
            throw fail("[\(keys.joined(separator: "."))] is already a value")
        }
    }

    mutating func arrayTableHeader() throws(TOMLSyntaxError) {
        i += 2
        skipWhitespace()
        let keys = try key()
        skipWhitespace()
        guard peek == UInt8(ascii: "]"), peek(1) == UInt8(ascii: "]") else { throw fail("expected ]] to close the array-of-tables header") }
        i += 2
        let parent = try descend(root, keys.dropLast(), forHeader: true)
        let last = keys.last!
        let table = TableNode()
        table.headerDefined = true
        switch parent.entries[last] {
        case nil: parent.entries[last] = .tables([table])
        case .tables(var tables):
            tables.append(table)
            parent.entries[last] = .tables(tables)
        default: throw fail("[[\(keys.joined(separator: "."))]] names something that is not an array of tables")
        }
        current = table
    }

    /// Walks (creating) the tables named by `keys` below `table`, as a header or a dotted key does.
    mutating func descend(_ table: TableNode, _ keys: ArraySlice<String>, forHeader: Bool) throws(TOMLSyntaxError) -> TableNode {
        var node = table
        for key in keys {
            switch node.entries[key] {
            case nil:
                let child = TableNode()
                child.dottedDefined = !forHeader
                node.entries[key] = .table(child)
                node = child
            case .table(let child):
                if child.frozen { throw fail("\(key) is an inline table; it cannot be extended") }
                if !forHeader, !child.dottedDefined { throw fail("\(key) is a table defined elsewhere; dotted keys cannot extend it") }
                node = child
            case .tables(let tables):
                guard forHeader else { throw fail("\(key) is an array of tables; dotted keys cannot extend it") }
                node = tables.last!
            case .value:
                throw fail("\(key) is already a value")
            }
        }
        return node
    }

    mutating func keyValue(into table: TableNode) throws(TOMLSyntaxError) {
        let keys = try key()
        skipWhitespace()
        guard peek == UInt8(ascii: "=") else { throw fail("expected = after the key") }
        i += 1
        skipWhitespace()
        let v = try value()
        let parent = try descend(table, keys.dropLast(), forHeader: false)
        let last = keys.last!
        guard parent.entries[last] == nil else { throw fail("key \(keys.joined(separator: ".")) is defined twice") }
        switch v {
        case .inline(let node): parent.entries[last] = .table(node)
        case .plain(let plain): parent.entries[last] = .value(plain)
        }
    }

    // MARK: Keys

    mutating func key() throws(TOMLSyntaxError) -> [String] {
        var keys = [try simpleKey()]
        while true {
            let save = (i, line, lineStart)
            skipWhitespace()
            guard peek == UInt8(ascii: ".") else {
                (i, line, lineStart) = save
                return keys
            }
            i += 1
            skipWhitespace()
            keys.append(try simpleKey())
        }
    }

    mutating func simpleKey() throws(TOMLSyntaxError) -> String {
        guard let c = peek else { throw fail("expected a key") }
        if c == UInt8(ascii: "\"") {
            if peek(1) == c, peek(2) == c { throw fail("a key cannot be a multi-line string") }
            return try basicString()
        }
        if c == UInt8(ascii: "'") {
            if peek(1) == c, peek(2) == c { throw fail("a key cannot be a multi-line string") }
            return try literalString()
        }
        let start = i
        while let c = peek, Self.isBare(c) { i += 1 }
        guard i > start else { throw fail("expected a key") }
        return String(decoding: bytes[start..<i], as: UTF8.self)
    }

    static func isBare(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
    }

    // MARK: Values

    enum Parsed {
        case plain(TOMLValue)
        case inline(TableNode)
    }

    mutating func value() throws(TOMLSyntaxError) -> Parsed {
        guard let c = peek else { throw fail("expected a value") }
        switch c {
        case UInt8(ascii: "\""):
            if peek(1) == c, peek(2) == c { return .plain(.string(try multilineBasicString())) }
            return .plain(.string(try basicString()))
        case UInt8(ascii: "'"):
            if peek(1) == c, peek(2) == c { return .plain(.string(try multilineLiteralString())) }
            return .plain(.string(try literalString()))
        case UInt8(ascii: "["):
            return .plain(try array())
        case UInt8(ascii: "{"):
            return .inline(try inlineTable())
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            if word("true") { return .plain(.boolean(true)) }
            if word("false") { return .plain(.boolean(false)) }
            throw fail("expected a value (true and false are lower case)")
        default:
            return .plain(try number())
        }
    }

    mutating func word(_ w: String) -> Bool {
        let u = Array(w.utf8)
        guard i + u.count <= bytes.count, Array(bytes[i..<(i + u.count)]) == u else { return false }
        if let after = i + u.count < bytes.count ? bytes[i + u.count] : nil, Self.isBare(after) { return false }
        i += u.count
        return true
    }

    mutating func array() throws(TOMLSyntaxError) -> TOMLValue {
        i += 1
        var items: [TOMLValue] = []
        while true {
            try skipBlank()
            if peek == UInt8(ascii: "]") {
                i += 1
                return .array(items)
            }
            switch try value() {
            case .plain(let v): items.append(v)
            case .inline(let node): items.append(.table(node.value()))
            }
            try skipBlank()
            if peek == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard peek == UInt8(ascii: "]") else { throw fail("expected , or ] in the array") }
            i += 1
            return .array(items)
        }
    }

    mutating func inlineTable() throws(TOMLSyntaxError) -> TableNode {
        i += 1
        let node = TableNode()
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            i += 1
            node.frozen = true
            return node
        }
        while true {
            skipWhitespace()
            try keyValue(into: node)
            skipWhitespace()
            if peek == UInt8(ascii: ",") {
                i += 1
                continue
            }
            guard peek == UInt8(ascii: "}") else { throw fail("expected , or } in the inline table (it must stay on one line)") }
            i += 1
            freeze(node)
            return node
        }
    }

    func freeze(_ node: TableNode) {
        node.frozen = true
        for case .table(let child) in node.entries.values { freeze(child) }
    }

    // MARK: Strings

    mutating func basicString() throws(TOMLSyntaxError) -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return try text(out)
            case UInt8(ascii: "\\"):
                try escape(into: &out)
            case 0x0A, 0x0D:
                throw fail("newline in a single-line string")
            default:
                if (c < 0x20 && c != 0x09) || c == 0x7F { throw fail("control character in a string") }
                out.append(c)
                i += 1
            }
        }
    }

    mutating func multilineBasicString() throws(TOMLSyntaxError) -> String {
        i += 3
        try trimFirstNewline()
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated multi-line string") }
            if c == UInt8(ascii: "\""), peek(1) == c, peek(2) == c {
                // Up to two quotes may end the content just before the closing three.
                var quotes = 3
                while peek(quotes) == c, quotes < 5 { quotes += 1 }
                out += Array(repeating: c, count: quotes - 3)
                i += quotes
                return try text(out)
            }
            if c == UInt8(ascii: "\\") {
                // A line-ending backslash trims the newline and the whitespace after it.
                var j = i + 1
                while j < bytes.count, bytes[j] == 0x20 || bytes[j] == 0x09 { j += 1 }
                if j < bytes.count, bytes[j] == 0x0A || (bytes[j] == 0x0D && j + 1 < bytes.count && bytes[j + 1] == 0x0A) {
                    i = j
                    while let d = peek, d == 0x20 || d == 0x09 || d == 0x0A || d == 0x0D {
                        if d == 0x0D, peek(1) != 0x0A { throw fail("a carriage return must be followed by a newline") }
                        advance()
                    }
                    continue
                }
                try escape(into: &out)
                continue
            }
            try multilineCharacter(c, into: &out)
        }
    }

    mutating func literalString() throws(TOMLSyntaxError) -> String {
        i += 1
        let start = i
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            if c == UInt8(ascii: "'") {
                let content = Array(bytes[start..<i])
                i += 1
                return try text(content)
            }
            if c == 0x0A || c == 0x0D { throw fail("newline in a single-line string") }
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw fail("control character in a string") }
            i += 1
        }
    }

    mutating func multilineLiteralString() throws(TOMLSyntaxError) -> String {
        i += 3
        try trimFirstNewline()
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated multi-line string") }
            if c == UInt8(ascii: "'"), peek(1) == c, peek(2) == c {
                var quotes = 3
                while peek(quotes) == c, quotes < 5 { quotes += 1 }
                out += Array(repeating: c, count: quotes - 3)
                i += quotes
                return try text(out)
            }
            try multilineCharacter(c, into: &out)
        }
    }

    mutating func trimFirstNewline() throws(TOMLSyntaxError) {
        if peek == 0x0A {
            advance()
        } else if peek == 0x0D, peek(1) == 0x0A {
            i += 1
            advance()
        }
    }

    mutating func multilineCharacter(_ c: UInt8, into out: inout [UInt8]) throws(TOMLSyntaxError) {
        if c == 0x0D {
            guard peek(1) == 0x0A else { throw fail("a carriage return must be followed by a newline") }
            out.append(0x0A)
            i += 1
            advance()
            return
        }
        if c == 0x0A {
            out.append(c)
            advance()
            return
        }
        if (c < 0x20 && c != 0x09) || c == 0x7F { throw fail("control character in a string") }
        out.append(c)
        i += 1
    }

    mutating func escape(into out: inout [UInt8]) throws(TOMLSyntaxError) {
        i += 1
        guard let e = peek else { throw fail("unterminated escape") }
        i += 1
        switch e {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let digits = e == UInt8(ascii: "u") ? 4 : 8
            guard i + digits <= bytes.count, let scalarValue = UInt32(String(decoding: bytes[i..<(i + digits)], as: UTF8.self), radix: 16),
                bytes[i..<(i + digits)].allSatisfy({ Self.isHex($0) }), let scalar = Unicode.Scalar(scalarValue)
            else {
                throw fail("\\u and \\U need 4 or 8 hex digits of a Unicode scalar value")
            }
            out += Array(String(Character(scalar)).utf8)
            i += digits
        default:
            throw fail("unknown escape sequence")
        }
    }

    static func isHex(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66) }

    func text(_ utf8: [UInt8]) throws(TOMLSyntaxError) -> String {
        guard let s = String(validating: utf8, as: UTF8.self) else { throw fail("a string is not valid UTF-8") }
        return s
    }

    // MARK: Numbers

    mutating func number() throws(TOMLSyntaxError) -> TOMLValue {
        let start = i
        while let c = peek, Self.isBare(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: ":") { i += 1 }
        let token = String(decoding: bytes[start..<i], as: UTF8.self)
        guard !token.isEmpty else { throw fail("expected a value") }
        // 1979-05-27, 07:32:00, 1979-05-27T07:32:00Z: a date or a time.
        let u = Array(token.utf8)
        if (u.count >= 5 && u[4] == UInt8(ascii: "-") && u[0...3].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }))
            || (u.count >= 3 && u[2] == UInt8(ascii: ":"))
        {
            i = start
            throw fail("dates and times are not used in anonreg.toml")
        }
        if let value = Self.integer(token) { return .integer(value) }
        if let value = Self.float(token) { return .float(value) }
        i = start
        throw fail("not a valid value: expected a string, number, boolean, array or inline table")
    }

    static func integer(_ token: String) -> Int64? {
        var t = Substring(token)
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where t.hasPrefix(prefix) {
            let digits = t.dropFirst(2)
            guard validUnderscores(digits), !digits.isEmpty else { return nil }
            let plain = digits.replacingOccurrences(of: "_", with: "")
            guard plain.allSatisfy({ $0.isHexDigit }) else { return nil }
            return Int64(plain, radix: radix)
        }
        var negative = false
        if t.hasPrefix("+") || t.hasPrefix("-") {
            negative = t.hasPrefix("-")
            t = t.dropFirst()
        }
        guard !t.isEmpty, t.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "_") }), validUnderscores(t) else { return nil }
        let plain = t.replacingOccurrences(of: "_", with: "")
        if plain.count > 1, plain.hasPrefix("0") { return nil }
        return Int64((negative ? "-" : "") + plain)
    }

    static func float(_ token: String) -> Double? {
        var t = Substring(token)
        var sign = ""
        if t.hasPrefix("+") || t.hasPrefix("-") {
            sign = t.hasPrefix("-") ? "-" : ""
            t = t.dropFirst()
        }
        if t == "inf" { return sign == "-" ? -.infinity : .infinity }
        if t == "nan" { return .nan }
        // integer part, then a fraction and/or an exponent.
        let parts = t.split(separator: "e", maxSplits: 1, omittingEmptySubsequences: false)
        let exponentParts = parts.count == 2 ? parts : t.split(separator: "E", maxSplits: 1, omittingEmptySubsequences: false)
        let mantissa = exponentParts[0]
        let exponent = exponentParts.count == 2 ? exponentParts[1] : nil
        let pieces = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let whole = pieces[0]
        let fraction = pieces.count == 2 ? pieces[1] : nil
        guard fraction != nil || exponent != nil else { return nil }
        func digits(_ s: Substring) -> Bool {
            !s.isEmpty && s.allSatisfy { $0.isASCII && ($0.isNumber || $0 == "_") } && validUnderscores(s)
        }
        guard digits(whole), !(whole.count > 1 && whole.hasPrefix("0")) else { return nil }
        if let fraction { guard digits(fraction) else { return nil } }
        if var exponent {
            if exponent.hasPrefix("+") || exponent.hasPrefix("-") { exponent = exponent.dropFirst() }
            guard digits(exponent) else { return nil }
        }
        return Double(sign + t.replacingOccurrences(of: "_", with: ""))
    }

    /// Underscores only between two digits.
    static func validUnderscores(_ s: Substring) -> Bool {
        let chars = Array(s)
        for (n, c) in chars.enumerated() where c == "_" {
            guard n > 0, n < chars.count - 1, chars[n - 1] != "_", chars[n + 1] != "_",
                chars[n - 1].isHexDigit, chars[n + 1].isHexDigit
            else { return false }
        }
        return true
    }
}
