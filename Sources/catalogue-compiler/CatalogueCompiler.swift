import Foundation

/// Turns the message catalogues (`Sources/RegistryText/Catalogues/<language>.catalogue`) into a
/// Swift source file at build time, so the messages are part of the binaries and an installed
/// `anonreg` or `anonregd` needs no file beside it (docs/TRANSLATING.md).
///
/// Usage: `catalogue-compiler OUTPUT.swift FILE.catalogue...`. A syntax error stops the build with
/// `file:line: error: ...`. Whether every language has every key, and the same placeholders, is
/// checked by the tests (RegistryTextTests), which name each difference.
#if ANONREG_LIBFUZZER
    /// `make fuzz` builds every target with -sanitize=fuzzer (scripts/fuzz.sh), build tools included,
    /// and libFuzzer's runtime then needs this symbol. The tool keeps its own `main` (SwiftPM links
    /// it as the entry point, so libFuzzer's is never used) and never calls this.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func catalogueCompilerFuzzEntry(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt { 0 }
#endif

@main
struct CatalogueCompiler {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard arguments.count >= 2 else {
            FileHandle.standardError.write(Data("usage: catalogue-compiler OUTPUT.swift FILE.catalogue...\n".utf8))
            exit(2)
        }
        do {
            var tables: [(language: String, entries: [(String, String)])] = []
            for path in arguments.dropFirst().sorted() {
                let language = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
                guard language.range(of: "^[a-z]{2,3}$", options: .regularExpression) != nil else {
                    throw Failure(description: "\(path): error: a catalogue is named for its language, e.g. en.catalogue")
                }
                tables.append((language, try parse(path)))
            }
            let source = render(tables)
            let output = arguments[0]
            // Unchanged output keeps the build from recompiling RegistryText.
            if (try? String(contentsOfFile: output, encoding: .utf8)) != source {
                try source.write(toFile: output, atomically: true, encoding: .utf8)
            }
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            exit(1)
        }
    }

    /// `key = text` lines; `#` starts a comment line; `\n` in a text is a line break and `\\` a
    /// backslash. Placeholders are `{name}`; a brace outside one is an error.
    static func parse(_ path: String) throws -> [(String, String)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Failure(description: "\(path): error: cannot be read as UTF-8")
        }
        var entries: [(String, String)] = []
        var seen: [String: Int] = [:]
        for (index, rawLine) in text.components(separatedBy: "\n").enumerated() {
            let number = index + 1
            let line = rawLine.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if line.isEmpty || line.hasPrefix("#") { continue }
            func fail(_ why: String) -> Failure { Failure(description: "\(path):\(number): error: \(why)") }
            guard let equals = line.firstIndex(of: "=") else { throw fail("expected `key = text`") }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard
                key.range(of: "^[A-Za-z0-9_]+(\\.[A-Za-z0-9_-]+)*(\\[(zero|one|two|few|many|other)\\])?$", options: .regularExpression)
                    != nil
            else {
                throw fail(
                    "`\(key)` is not a key (letters, digits, _ and - in dot-separated parts, then [one], [few], ... for a plural form)")
            }
            if let first = seen[key] { throw fail("`\(key)` is already defined on line \(first)") }
            seen[key] = number
            let value = try unescape(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces), fail)
            try checkBraces(value, fail)
            entries.append((key, value))
        }
        return entries
    }

    static func unescape(_ text: String, _ fail: (String) -> Failure) throws -> String {
        var out = ""
        var escaped = false
        for c in text {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "\\": out.append("\\")
                default: throw fail("unknown escape \\\(c) (only \\n and \\\\)")
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        if escaped { throw fail("a text ends with a lone backslash") }
        return out
    }

    static func checkBraces(_ text: String, _ fail: (String) -> Failure) throws {
        var name: String? = nil
        for c in text {
            switch (c, name) {
            case ("{", nil): name = ""
            case ("}", let current?):
                guard current.range(of: "^[A-Za-z][A-Za-z0-9_]*$", options: .regularExpression) != nil else {
                    throw fail("`{\(current)}` is not a placeholder name")
                }
                name = nil
            case ("{", _?), ("}", nil): throw fail("a brace outside a {placeholder}")
            case (_, let current?): name = current + String(c)
            default: break
            }
        }
        if name != nil { throw fail("a placeholder is not closed with }") }
    }

    static func render(_ tables: [(language: String, entries: [(String, String)])]) -> String {
        var out = """
            // Generated by catalogue-compiler from Sources/RegistryText/Catalogues/*.catalogue at build time.
            // Edit the catalogues, not this file.

            extension Catalogue {
                static let compiled: [String: [String: String]] = [

            """
        for table in tables {
            out += "        \(literal(table.language)): [\n"
            for (key, value) in table.entries {
                out += "            \(literal(key)): \(literal(value)),\n"
            }
            out += "        ],\n"
        }
        out += "    ]\n}\n"
        return out
    }

    static func literal(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
