import Testing

@testable import RegistryConfig

/// The strict TOML 1.0 parser that reads anonreg.toml (TOML/TOMLParser.swift): what the
/// specification's examples accept, and what it calls invalid.
struct TOMLParserTests {
    @Test func valuesOfEveryKindParse() throws {
        let doc = try TOMLParser.parse(
            #"""
            # comment
            bare_key = "value"   # trailing comment
            "quoted key" = 'literal \n'
            dotted.inner = 1
            dotted . spaced = 2
            int = +1_000
            negative = -17
            hex = 0xDEAD_beef
            octal = 0o755
            binary = 0b1101
            float = 6.626e-34
            float2 = -0.5
            float3 = 1E6
            inf = -inf
            yes = true
            no = false
            escapes = "tab\tquote\" backslash\\ \u00e9 \U0001F600"
            multi = """
            Roses are red\
               Violets are blue
            ""\""""
            literal_multi = '''
            C:\path\n'''
            array = [ 1, 2,
              3, # comment
            ]
            nested = [[1], ["a"], []]
            inline = { a = 1, b.c = "x" }

            [table]
            key = 1

            [table.sub]
            key = 2

            [[items]]
            n = 1
            [[items]]
            n = 2
            """#)
        #expect(doc["bare_key"] == .string("value"))
        #expect(doc["quoted key"] == .string("literal \\n"))
        #expect(doc["dotted"] == .table(["inner": .integer(1), "spaced": .integer(2)]))
        #expect(doc["int"] == .integer(1000))
        #expect(doc["negative"] == .integer(-17))
        #expect(doc["hex"] == .integer(0xdeadbeef))
        #expect(doc["octal"] == .integer(0o755))
        #expect(doc["binary"] == .integer(13))
        #expect(doc["float"] == .float(6.626e-34))
        #expect(doc["float2"] == .float(-0.5))
        #expect(doc["float3"] == .float(1e6))
        #expect(doc["inf"] == .float(-.infinity))
        #expect(doc["yes"] == .boolean(true))
        #expect(doc["no"] == .boolean(false))
        #expect(doc["escapes"] == .string("tab\tquote\" backslash\\ é 😀"))
        #expect(doc["multi"] == .string("Roses are redViolets are blue\n\"\"\""))
        #expect(doc["literal_multi"] == .string("C:\\path\\n"))
        #expect(doc["array"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(doc["nested"] == .array([.array([.integer(1)]), .array([.string("a")]), .array([])]))
        #expect(doc["inline"] == .table(["a": .integer(1), "b": .table(["c": .string("x")])]))
        #expect(doc["table"] == .table(["key": .integer(1), "sub": .table(["key": .integer(2)])]))
        #expect(doc["items"] == .array([.table(["n": .integer(1)]), .table(["n": .integer(2)])]))
    }

    @Test(arguments: [
        ("duplicate key", "a = 1\na = 2"),
        ("table defined twice", "[a]\nx = 1\n[a]\ny = 2"),
        ("table over a value", "a = 1\n[a]"),
        ("dotted key into a header table", "[a.b]\nx = 1\n[a]\nb.y = 2"),
        ("header over a dotted table", "[a]\nb.c = 1\n[a.b]"),
        ("extend an inline table", "a = { b = 1 }\na.c = 2"),
        ("array of tables over a static array", "a = [1]\n[[a]]"),
        ("leading zero", "a = 01"),
        ("double underscore", "a = 1__0"),
        ("trailing underscore", "a = 10_"),
        ("bad escape", "a = \"\\q\""),
        ("newline in a string", "a = \"x\ny\""),
        ("unterminated string", "a = \"x"),
        ("control character", "a = \"\u{01}\""),
        ("two values on a line", "a = 1 b = 2"),
        ("no value", "a ="),
        ("no key", "= 1"),
        ("capitalised boolean", "a = True"),
        ("missing comma", "a = [1 2]"),
        ("trailing comma in an inline table", "a = { b = 1, }"),
        ("newline in an inline table", "a = { b = 1,\n c = 2 }"),
        ("unclosed header", "[a"),
        ("a date", "a = 1979-05-27"),
        ("a time", "a = 07:32:00"),
        ("lone carriage return", "a = 1\rb = 2"),
        ("bare key with a dot and nothing after", "a. = 1"),
        ("hex with a sign", "a = -0x10"),
        ("float without digits after the point", "a = 1."),
    ])
    func invalidDocumentsAreRefusedWithAPosition(name: String, text: String) {
        do {
            _ = try TOMLParser.parse(text)
            Issue.record("\(name) was accepted")
        } catch {
            #expect(error.line >= 1 && error.column >= 1, "\(name)")
        }
    }

    @Test func unknownKeysAreNamedAtAnyDepth() throws {
        struct Inner: Decodable { var x: Int }
        struct Outer: Decodable {
            var a: Inner
            var list: [Inner]?
            var map: [String: Inner]?
        }
        #expect(throws: TOMLStrictDecoder.UnknownKeys(keys: ["a.y", "list.1.z", "map.m.w", "top"])) {
            _ = try TOMLStrictDecoder.decode(
                Outer.self,
                from: """
                    top = 1
                    list = [{ x = 1 }, { x = 2, z = 3 }]
                    [a]
                    x = 1
                    y = 2
                    [map.m]
                    x = 1
                    w = 2
                    """)
        }
        let ok = try TOMLStrictDecoder.decode(Outer.self, from: "[a]\nx = 5\n[map.q]\nx = 6\n")
        #expect(ok.a.x == 5 && ok.map?["q"]?.x == 6 && ok.list == nil)
    }
}
