import RegistryProtocol

/// A self-contained SVG line chart of monthly enrolments and completions (all the response's
/// categories added up), drawn from a statistics response: axes, ticks, month labels, two
/// series and a legend. A month where any category's cell is suppressed has no point: the line
/// breaks there and a grey mark on the axis says why.
public enum StatsChart {
    public static let width = 800
    public static let height = 500

    struct Series {
        let name: String
        let colour: String
        let values: [Int?]
    }

    public static func svg(_ response: StatsResponse) -> String {
        let months = response.tables.first?.rows.map(\.month) ?? response.from.months(through: response.to)
        func series(_ metric: String) -> [Int?] {
            let tables = response.tables.filter { $0.metric == metric }
            return months.map { m in
                var sum = 0
                for t in tables {
                    guard let value = t.rows.first(where: { $0.month == m })?.total.value else { return nil }
                    sum += value
                }
                return sum
            }
        }
        let all = [
            Series(name: "enrolments", colour: "#1f77b4", values: series("enrolled")),
            Series(name: "completions", colour: "#d62728", values: series("completed")),
        ]
        let left = 70.0
        let right = 30.0
        let top = 60.0
        let bottom = 90.0
        let plotW = Double(width) - left - right
        let plotH = Double(height) - top - bottom
        let maxValue = max(all.flatMap { $0.values.compactMap { $0 } }.max() ?? 0, 1)
        let step = niceStep(maxValue)
        let yMax = ((maxValue + step - 1) / step) * step
        func x(_ i: Int) -> Double { months.count <= 1 ? left + plotW / 2 : left + plotW * Double(i) / Double(months.count - 1) }
        func y(_ v: Int) -> Double { top + plotH - plotH * Double(v) / Double(yMax) }
        func f(_ v: Double) -> String { trim(v) }

        var svg: [String] = []
        svg.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
        svg.append(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" font-family=\"sans-serif\" font-size=\"12\">"
        )
        svg.append("<title>anonreg: monthly enrolments and completions, \(response.from) to \(response.to)</title>")
        svg.append("<rect x=\"0\" y=\"0\" width=\"\(width)\" height=\"\(height)\" fill=\"#ffffff\"/>")
        let scope = response.category.map { "category \(escape($0))" } ?? "all categories"
        svg.append(
            "<text x=\"\(width / 2)\" y=\"28\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">Enrolments and completions per month (\(scope))</text>"
        )
        // Grid and y axis.
        var v = 0
        while v <= yMax {
            svg.append("<line x1=\"\(f(left))\" y1=\"\(f(y(v)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(v)))\" stroke=\"#e0e0e0\"/>")
            svg.append("<text x=\"\(f(left - 8))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\">\(v)</text>")
            v += step
        }
        svg.append("<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" stroke=\"#000000\"/>")
        svg.append(
            "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"#000000\"/>")
        svg.append(
            "<text x=\"18\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(f(top + plotH / 2)))\">count</text>"
        )
        // Month labels (at most about 12).
        let every = max(1, (months.count + 11) / 12)
        for (i, m) in months.enumerated() where i % every == 0 || i == months.count - 1 {
            svg.append(
                "<line x1=\"\(f(x(i)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(x(i)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"#000000\"/>")
            svg.append("<text x=\"\(f(x(i)))\" y=\"\(f(top + plotH + 20))\" text-anchor=\"middle\">\(m)</text>")
        }
        svg.append("<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 42))\" text-anchor=\"middle\">month</text>")
        // Series: a polyline per unbroken run, a dot per point, a grey mark where suppressed.
        for s in all {
            var run: [String] = []
            func flush() {
                if run.count > 1 {
                    svg.append(
                        "<polyline fill=\"none\" stroke=\"\(s.colour)\" stroke-width=\"2.5\" points=\"\(run.joined(separator: " "))\"/>")
                }
                run = []
            }
            for (i, value) in s.values.enumerated() {
                if let value {
                    run.append("\(f(x(i))),\(f(y(value)))")
                    svg.append(
                        "<circle cx=\"\(f(x(i)))\" cy=\"\(f(y(value)))\" r=\"4\" fill=\"\(s.colour)\"><title>\(s.name) \(months[i]): \(value)</title></circle>"
                    )
                } else {
                    flush()
                    svg.append(
                        "<rect x=\"\(f(x(i) - 3))\" y=\"\(f(top + plotH - 8))\" width=\"6\" height=\"6\" fill=\"#9e9e9e\"><title>\(s.name) \(months[i]): suppressed</title></rect>"
                    )
                }
            }
            flush()
        }
        // Legend.
        let legendY = Double(height) - 22
        for (i, s) in all.enumerated() {
            let lx = left + Double(i) * 170
            svg.append(
                "<line x1=\"\(f(lx))\" y1=\"\(f(legendY))\" x2=\"\(f(lx + 30))\" y2=\"\(f(legendY))\" stroke=\"\(s.colour)\" stroke-width=\"3\"/>"
            )
            svg.append("<text x=\"\(f(lx + 38))\" y=\"\(f(legendY + 4))\">\(s.name)</text>")
        }
        let noteX = left + 340
        svg.append("<rect x=\"\(f(noteX))\" y=\"\(f(legendY - 4))\" width=\"8\" height=\"8\" fill=\"#9e9e9e\"/>")
        svg.append("<text x=\"\(f(noteX + 14))\" y=\"\(f(legendY + 4))\">suppressed (a cell under \(response.k))</text>")
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    /// A tick step of 1, 2 or 5 × 10ⁿ giving at most about eight ticks.
    static func niceStep(_ maxValue: Int) -> Int {
        var magnitude = 1
        while true {
            for m in [1, 2, 5] where maxValue / (m * magnitude) <= 8 { return m * magnitude }
            magnitude *= 10
        }
    }

    static func trim(_ v: Double) -> String {
        let rounded = (v * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }
}
