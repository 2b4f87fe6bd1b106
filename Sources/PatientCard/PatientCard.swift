import RegistryText

/// The patient's printable card (docs/OPERATIONS.md §Patient cards): the code in large grouped
/// type, a QR code that holds the code and nothing else, and one fixed sentence (`card.sentence`
/// of the catalogues). Nothing else: no clinic, date, category or name, so a card someone finds
/// reveals only a code. The CLI renders it; anonregd never sees it.
public enum PatientCard {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Not a patient code in its printed form (`XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXX`).
        case notACode
        case qr(QRMatrix.Failure)
        /// The language's sentence does not fit the card even in the smallest type.
        case sentenceTooLong(CardSize, Language)

        public var description: String {
            switch self {
            case .notACode: "the card takes a patient code in its printed form"
            case .qr(let failure): failure.description
            case .sentenceTooLong(let size, let language):
                "the card sentence of language \(language.rawValue) does not fit a \(size.rawValue) card"
            }
        }
    }

    /// Groups of the code on each line of the card: 2, 2, 2 and the last one.
    static let groupsPerLine = 2

    /// The card as an SVG document. `code` must be a code as `PatientCode.formatted()` writes it.
    public static func svg(code: String, size: CardSize, language: Language) throws(Failure) -> String {
        guard isPrintedCode(code) else { throw .notACode }
        let matrix: QRMatrix
        do { matrix = try QRMatrix.encode(code) } catch { throw .qr(error) }
        let layout = try CardLayout(
            size: size, qrWidth: matrix.width, code: code,
            sentence: Catalogue.text("card.sentence", language), language: language)
        return CardSVG.render(layout: layout, matrix: matrix)
    }

    /// `XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXX`: 27 symbols of the code alphabet in groups of four.
    static func isPrintedCode(_ code: String) -> Bool {
        let groups = code.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.count == 7, groups.dropLast().allSatisfy({ $0.count == 4 }), groups.last!.count == 3 else { return false }
        let alphabet = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U")
        return groups.allSatisfy { $0.allSatisfy { alphabet.contains($0) } }
    }
}

/// Where everything goes on a card of one size (millimetres, y downwards).
struct CardLayout {
    struct Line {
        var text: String
        var x: Double
        /// Baseline.
        var y: Double
        var width: Double
    }

    var size: CardSize
    var qrX: Double
    var qrY: Double
    var module: Double
    var codeSize: Double
    var codeLines: [Line]
    var sentenceSize: Double
    var sentenceLines: [Line]

    /// DejaVu's cap height and ascent, in em, for placing baselines.
    static let capHeight = 0.73
    static let ascent = 0.76
    static let lineSpacing = 1.25

    init(size: CardSize, qrWidth: Int, code: String, sentence: String, language: Language) throws(PatientCard.Failure) {
        self.size = size
        let m = size.margin
        module = size.qrModule
        // Four modules of light around the symbol (ISO/IEC 18004 §6.3.8): the margin and the gaps.
        let quiet = 4 * module
        let qrSide = Double(qrWidth) * module
        qrX = m
        qrY = m

        // The code: lines of two groups beside the symbol, as tall as it.
        let groups = code.split(separator: "-").map(String.init)
        var lines: [String] = []
        var index = 0
        while index < groups.count {
            lines.append(groups[index..<min(index + PatientCard.groupsPerLine, groups.count)].joined(separator: "-"))
            index += PatientCard.groupsPerLine
        }
        let columnX = qrX + qrSide + quiet
        let columnWidth = size.width - m - columnX
        let blockHeightInEm = Self.capHeight + Double(lines.count - 1) * Self.lineSpacing
        let longest = lines.map(\.count).max() ?? 1
        codeSize = min(qrSide / blockHeightInEm, columnWidth / (Double(longest) * TextMetrics.monoAdvance))
        let blockWidth = TextMetrics.monoWidth(String(repeating: "X", count: longest), size: codeSize)
        let blockX = columnX + (columnWidth - blockWidth) / 2
        let top = qrY + (qrSide - blockHeightInEm * codeSize) / 2 + Self.capHeight * codeSize
        let codeSize = codeSize
        codeLines = lines.enumerated().map { i, text in
            Line(
                text: text, x: blockX, y: top + Double(i) * Self.lineSpacing * codeSize, width: TextMetrics.monoWidth(text, size: codeSize))
        }

        // The sentence: under the symbol, across the card, in the largest type that fits.
        let boxTop = qrY + qrSide + quiet
        let boxHeight = size.height - m - boxTop
        let boxWidth = size.width - 2 * m
        var fontSize = size.sentenceSizes.largest
        var wrapped: [String]? = nil
        while fontSize >= size.sentenceSizes.smallest - 1e-9 {
            if let candidate = TextMetrics.wrap(sentence, width: boxWidth, size: fontSize),
                (Double(candidate.count - 1) * Self.lineSpacing + 1) * fontSize <= boxHeight
            {
                wrapped = candidate
                break
            }
            fontSize -= 0.05
        }
        guard let wrapped else { throw .sentenceTooLong(size, language) }
        sentenceSize = fontSize
        let first = boxTop + Self.ascent * fontSize
        sentenceLines = wrapped.enumerated().map { i, text in
            Line(text: text, x: m, y: first + Double(i) * Self.lineSpacing * fontSize, width: TextMetrics.sansWidth(text, size: fontSize))
        }
    }
}
