/// Writes a card layout as SVG 1.1: a white card with a light cutting outline, the QR symbol as
/// one path of dark modules, and text elements for the code lines and the sentence lines, and
/// nothing else (no title, description, metadata or comment).
enum CardSVG {
    static let codeFonts = "'DejaVu Sans Mono', 'Liberation Mono', Consolas, monospace"
    static let sentenceFonts = "'DejaVu Sans', 'Liberation Sans', Arial, sans-serif"

    static func render(layout: CardLayout, matrix: QRMatrix) -> String {
        let w = number(layout.size.width)
        let h = number(layout.size.height)
        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(w)mm" height="\(h)mm" viewBox="0 0 \(w) \(h)">

            """
        let r = number(layout.size.cornerRadius)
        out +=
            "<rect x=\"0.1\" y=\"0.1\" width=\"\(number(layout.size.width - 0.2))\" height=\"\(number(layout.size.height - 0.2))\" "
            + "rx=\"\(r)\" ry=\"\(r)\" fill=\"#ffffff\" stroke=\"#b4b4b4\" stroke-width=\"0.2\"/>\n"
        out +=
            "<path fill=\"#000000\" shape-rendering=\"crispEdges\" d=\"\(modulePath(matrix, x: layout.qrX, y: layout.qrY, module: layout.module))\"/>\n"
        for line in layout.codeLines {
            out += text(line, size: layout.codeSize, fonts: codeFonts, weight: "bold")
        }
        for line in layout.sentenceLines {
            out += text(line, size: layout.sentenceSize, fonts: sentenceFonts, weight: "normal")
        }
        return out + "</svg>\n"
    }

    /// Dark modules as one path, a rectangle per horizontal run.
    static func modulePath(_ matrix: QRMatrix, x: Double, y: Double, module: Double) -> String {
        var d = ""
        for row in 0..<matrix.width {
            var column = 0
            while column < matrix.width {
                guard matrix[column, row] else {
                    column += 1
                    continue
                }
                let start = column
                while column < matrix.width, matrix[column, row] { column += 1 }
                d +=
                    "M\(number(x + Double(start) * module)) \(number(y + Double(row) * module))"
                    + "h\(number(Double(column - start) * module))v\(number(module))h\(number(-Double(column - start) * module))z"
            }
        }
        return d
    }

    static func text(_ line: CardLayout.Line, size: Double, fonts: String, weight: String) -> String {
        "<text x=\"\(number(line.x))\" y=\"\(number(line.y))\" font-family=\"\(fonts)\" font-size=\"\(number(size))\" "
            + "font-weight=\"\(weight)\" fill=\"#000000\" textLength=\"\(number(line.width))\" lengthAdjust=\"spacingAndGlyphs\">"
            + escape(line.text) + "</text>\n"
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    /// Millimetres with at most three decimals, no trailing zeros ("12.5", "0.6", "-4.8").
    static func number(_ value: Double) -> String {
        let thousandths = Int((value * 1000).rounded())
        let sign = thousandths < 0 ? "-" : ""
        let magnitude = thousandths.magnitude
        let whole = magnitude / 1000
        var fraction = String(magnitude % 1000)
        guard fraction != "0" else { return sign + String(whole) }
        fraction = String(repeating: "0", count: 3 - fraction.count) + fraction
        while fraction.hasSuffix("0") { fraction.removeLast() }
        return "\(sign)\(whole).\(fraction)"
    }
}
