import Foundation
import RegistryCore
import RegistryProtocol
import Testing

@testable import RegistryStats

#if canImport(FoundationXML)
    import FoundationXML
#endif

@Suite struct RenderingTests {
    func sample() throws -> StatsResponse {
        let m = (1...6).map { Month(year: 2026, month: $0)! }
        var counters: [CounterRow] = []
        for (i, month) in m.enumerated() {
            counters.append(
                CounterRow(
                    key: CounterKey(month: month, category: "dependence", clinic: ClinicID("north")!, metric: "enrolled"), value: 10 + 3 * i
                ))
            counters.append(
                CounterRow(
                    key: CounterKey(month: month, category: "dependence", clinic: ClinicID("north")!, metric: "completed"),
                    value: i == 2 ? 2 : 6 + i))
        }
        return try StatsBuilder(k: 5, categories: ["dependence"], clinics: ["north"])
            .build(StatsQuery(from: m[0], to: m[5]), counters: counters, uniquePersons: [], today: Day("2026-06-20")!)
    }

    @Test func csvHasOneLinePerPrintedCell() throws {
        let csv = StatsRendering.csv(try sample())
        let lines = csv.split(separator: "\n")
        #expect(lines.first == "metric,category,month,clinic,value")
        #expect(lines.contains("enrolled,dependence,2026-01,total,10"))
        #expect(lines.contains("completed,dependence,2026-03,total,<5"))
        #expect(lines.contains { $0.hasPrefix("enrolled,dependence,total,total,") })
    }

    @Test func textTableListsMonthsAndMetrics() throws {
        let text = StatsRendering.text(try sample())
        #expect(text.contains("Category dependence"))
        #expect(text.contains("2026-01"))
        #expect(text.contains("<5"))
        #expect(text.contains("enrolled"))
    }

    final class Collector: NSObject, XMLParserDelegate {
        var elements: [String] = []
        var texts: [String] = []
        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String]
        ) {
            elements.append(name)
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { texts.append(string) }
    }

    @Test func svgIsWellFormedWithAxesTwoSeriesAndALegend() throws {
        let svg = StatsChart.svg(try sample())
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = Collector()
        parser.delegate = collector
        #expect(parser.parse(), "the SVG is not well-formed XML: \(String(describing: parser.parserError))")
        #expect(collector.elements.first == "svg")
        #expect(collector.elements.filter { $0 == "polyline" }.count >= 2)
        let text = collector.texts.joined(separator: " ")
        #expect(text.contains("enrolments") && text.contains("completions"))
        #expect(text.contains("2026-01") && text.contains("2026-06"))
        // The suppressed March completion is a gap with a mark, not a point.
        #expect(text.contains("completions 2026-03: suppressed"))
    }
}
