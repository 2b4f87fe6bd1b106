import AnonregTestSupport
import Foundation
import RegistryCrypto
import RegistryText
import Testing

@testable import PatientCard

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The card as a reader sees it: rendered to pixels and scanned, and its text extracted, the way
/// someone who finds a card, or a tool that indexes a file, would read it.
@Suite(.serialized)
struct CardRenderingTests {
    static let rsvg = "/usr/bin/rsvg-convert"
    static let zbarimg = "/usr/bin/zbarimg"
    static let pdftoppm = "/usr/bin/pdftoppm"
    static let pdftotext = "/usr/bin/pdftotext"

    /// What zbarimg reads from a PNG: every symbol's data, as it is (`--raw`).
    static func scan(_ png: String) throws -> String {
        let result = try Binaries.runExecutable(zbarimg, ["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", png])
        #expect(result.status == 0, "zbarimg found no QR code in \(png): \(result.stderr)")
        return result.stdout
    }

    static func svgToPNG(_ svg: String, in tmp: TemporaryDirectory, name: String) throws -> String {
        let svgPath = tmp.sub("\(name).svg")
        let pngPath = tmp.sub("\(name).png")
        try svg.write(toFile: svgPath, atomically: true, encoding: .utf8)
        let result = try Binaries.runExecutable(
            rsvg, ["--dpi-x", "300", "--dpi-y", "300", "--background-color", "white", "-o", pngPath, svgPath])
        #expect(result.status == 0, "rsvg-convert: \(result.stderr)")
        return pngPath
    }

    static func pdfToPNG(_ pdf: Data, in tmp: TemporaryDirectory, name: String) throws -> String {
        let pdfPath = tmp.sub("\(name).pdf")
        try pdf.write(to: URL(fileURLWithPath: pdfPath))
        let result = try Binaries.runExecutable(pdftoppm, ["-r", "300", "-png", "-singlefile", pdfPath, tmp.sub(name + "-pdf")])
        #expect(result.status == 0, "pdftoppm: \(result.stderr)")
        return tmp.sub(name + "-pdf.png")
    }

    static func randomCode() throws -> String { try PatientCode.generate().formatted() }

    /// 20 random codes, each on both sizes, as SVG and as PDF, in both languages by turns: the QR
    /// symbol decodes to exactly the code, with nothing before or after it.
    @Test func qrDecodesToExactlyTheCode() throws {
        let tmp = TemporaryDirectory()
        var codes = try (0..<18).map { _ in try Self.randomCode() }
        // Check symbols outside QR's alphanumeric set (~ and =) and the largest first symbol.
        codes.append(try Self.code(endingIn: ["~", "="]))
        codes.append(try Self.code(endingIn: ["$", "*"]))
        for (i, code) in codes.enumerated() {
            let language = Language.allCases[i % Language.allCases.count]
            for size in CardSize.allCases {
                let svg = try PatientCard.svg(code: code, size: size, language: language)
                let fromSVG = try Self.scan(try Self.svgToPNG(svg, in: tmp, name: "c\(i)-\(size)"))
                #expect(fromSVG == code + "\n", "SVG \(size) \(language): read \(fromSVG.debugDescription), printed \(code)")
                let pdf = try CardPDF.pdf(fromSVG: svg)
                let fromPDF = try Self.scan(try Self.pdfToPNG(pdf, in: tmp, name: "c\(i)-\(size)"))
                #expect(fromPDF == code + "\n", "PDF \(size) \(language): read \(fromPDF.debugDescription), printed \(code)")
            }
        }
    }

    /// A random code whose check symbol is one of `checks` (drawn until one is).
    static func code(endingIn checks: Set<Character>) throws -> String {
        while true {
            let code = try randomCode()
            if checks.contains(code.last!) { return code }
        }
    }

    /// Everything in the SVG that a reader or an indexer sees as text: the text nodes, in order,
    /// and every element name.
    final class SVGReader: NSObject, XMLParserDelegate {
        var texts: [String] = []
        var elements: [String] = []
        var otherText = ""
        var comments: [String] = []
        private var current: String? = nil

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            elements.append(name)
            if name == "text" { current = "" }
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "text", let text = current {
                texts.append(text)
                current = nil
            }
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if current != nil { current! += string } else { otherText += string }
        }
        func parser(_ parser: XMLParser, foundComment comment: String) { comments.append(comment) }
    }

    @Test(arguments: CardSize.allCases)
    func svgTextIsTheCodeAndTheSentenceOnly(size: CardSize) throws {
        for language in Language.allCases {
            let code = try Self.randomCode()
            let svg = try PatientCard.svg(code: code, size: size, language: language)
            let reader = SVGReader()
            let parser = XMLParser(data: Data(svg.utf8))
            parser.delegate = reader
            #expect(parser.parse(), "the card is not well-formed XML")
            #expect(Set(reader.elements).isSubset(of: ["svg", "rect", "path", "text"]), "elements: \(Set(reader.elements))")
            #expect(reader.comments.isEmpty)
            #expect(reader.otherText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
            let codeLines = reader.texts.prefix(4)
            let sentenceLines = reader.texts.dropFirst(4)
            #expect(codeLines.joined(separator: "-") == code)
            #expect(sentenceLines.joined(separator: " ") == Catalogue.text("card.sentence", language))
            #expect(reader.texts.count == 4 + sentenceLines.count)
            // The sentence says no name is kept, and nothing of who, where or when.
            #expect(!sentenceLines.isEmpty)
        }
    }

    /// What pdftotext extracts from the PDF card: the code's lines and the sentence's words, and
    /// nothing else; and the file's metadata carries no date but the epoch.
    @Test(arguments: CardSize.allCases)
    func pdfTextIsTheCodeAndTheSentenceOnly(size: CardSize) throws {
        let tmp = TemporaryDirectory()
        for language in Language.allCases {
            let code = try Self.randomCode()
            let pdf = try CardPDF.pdf(fromSVG: try PatientCard.svg(code: code, size: size, language: language))
            let path = tmp.sub("card-\(language).pdf")
            try pdf.write(to: URL(fileURLWithPath: path))
            let text = try Binaries.runExecutable(Self.pdftotext, [path, "-"])
            #expect(text.status == 0)
            let words = text.stdout.split(whereSeparator: { $0.isWhitespace }).map(String.init)
            var expected = code.split(separator: "-").chunked(2).map { $0.joined(separator: "-") }
            expected += Catalogue.text("card.sentence", language).split(separator: " ").map(String.init)
            #expect(words.sorted() == expected.sorted(), "pdftotext: \(words)")
            #expect(words.joined().contains(code.replacingOccurrences(of: "-", with: "")) || words.prefix(4).joined(separator: "-") == code)
            let info = try Binaries.runExecutable("/usr/bin/pdfinfo", [path])
            let dates = info.stdout.split(separator: "\n").filter { $0.hasPrefix("CreationDate") || $0.hasPrefix("ModDate") }
            #expect(dates.allSatisfy { $0.contains("1970") }, "PDF dates: \(dates)")
            #expect(!info.stdout.contains("Title:"), "PDF has a title: \(info.stdout)")
        }
    }

    @Test func cardsAreTheRightSize() throws {
        let code = try Self.randomCode()
        let wallet = try PatientCard.svg(code: code, size: .wallet, language: .ru)
        #expect(wallet.contains("width=\"85.6mm\" height=\"54mm\""))
        let sticker = try PatientCard.svg(code: code, size: .sticker, language: .en)
        #expect(sticker.contains("width=\"70mm\" height=\"37mm\""))
        let tmp = TemporaryDirectory()
        let path = tmp.sub("w.pdf")
        try CardPDF.pdf(fromSVG: wallet).write(to: URL(fileURLWithPath: path))
        let info = try Binaries.runExecutable("/usr/bin/pdfinfo", [path]).stdout
        // 85.6 mm × 54 mm = 242.646 × 153.071 pt.
        #expect(info.contains("Page size:       242.646 x 153.071 pts"), "\(info)")
    }

    @Test func onlyPrintedCodesAreAccepted() throws {
        for text in [
            "", "0000", "0000-0000-0000-0000-0000-0000-0000", "0000-0000-0000-0000-0000-0000-00<", "abcd-0000-0000-0000-0000-0000-000",
            "0000-0000-0000-0000-0000-0000-000\n", "0000 0000-0000-0000-0000-0000-000",
        ] {
            #expect(throws: PatientCard.Failure.notACode) { try PatientCard.svg(code: text, size: .wallet, language: .en) }
        }
    }

    @Test func theSymbolIsVersion4AtEveryCheckSymbol() throws {
        for check in "0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U" {
            let matrix = try QRMatrix.encode("7ZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZ" + String(check))
            #expect(matrix.width == 33)
        }
        #expect(throws: QRMatrix.Failure.tooLong) { try QRMatrix.encode(String(repeating: "x", count: 200)) }
    }
}

extension Array {
    func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
