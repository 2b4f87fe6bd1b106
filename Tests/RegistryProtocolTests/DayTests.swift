import RegistryProtocol
import Testing

struct DayTests {
    @Test func epochAndKnownOrdinals() {
        #expect(Day("1970-01-01")?.ordinal == 0)
        #expect(Day("2000-03-01")?.ordinal == 11017)
        #expect(Day("2026-11-22")?.ordinal == 20779)  // Python: (date(2026,11,22) - date(1970,1,1)).days
        #expect(Day("1969-12-31")?.ordinal == -1)
    }

    @Test func roundTripsEveryDayOfFourHundredYears() {
        var day = Day("1900-01-01")!
        let end = Day("2300-01-01")!
        var previous = day.ordinal - 1
        while day < end {
            #expect(day.ordinal == previous + 1)
            #expect(Day(day.description) == day)
            previous = day.ordinal
            day = day.adding(days: 1)
        }
    }

    /// The text is written digit by digit (docs/PERFORMANCE.md, due list); it must be exactly
    /// the zero-padded `YYYY-MM-DD` built from the components, at the ends of the range too.
    @Test func descriptionIsTheZeroPaddedDate() {
        func padded(_ value: Int, _ width: Int) -> String {
            String(repeating: "0", count: max(0, width - String(value).count)) + String(value)
        }
        // Days past the parser's range (year 0, negative years, years of five digits) are
        // reachable by arithmetic; they keep the old text.
        let outside = [-800_000, -719_529, -719_528, -1, 2_932_896, 2_932_897, 3_000_000].map { Day(ordinal: $0) }
        var days = [Day("0001-01-01")!, Day("0999-12-31")!, Day("1000-01-01")!, Day("9999-12-31")!] + outside
        var day = Day("0001-01-01")!
        while day < Day("9999-12-31")! {
            days.append(day)
            day = day.adding(days: 997)
        }
        for day in days {
            let c = day.components
            #expect(day.description == "\(padded(c.year, 4))-\(padded(c.month, 2))-\(padded(c.day, 2))")
            if (1...9999).contains(c.year) { #expect(Day(day.description) == day) }
        }
        #expect(Day("0042-03-07")!.description == "0042-03-07")
    }

    @Test(arguments: [
        "2026-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "26-01-01", "2026/01/01",
        "2026-1-01", "2026-01-1", " 2026-01-01", "2026-01-01T00:00", "２０２６-01-01", "", "0000-01-01",
    ])
    func rejectsMalformedDates(_ text: String) { #expect(Day(text) == nil) }

    @Test func leapYears() {
        #expect(Day("2024-02-29") != nil)
        #expect(Day("2000-02-29") != nil)
        #expect(Day("1900-02-29") == nil)
        #expect(Day("2024-02-28")!.days(until: Day("2024-03-01")!) == 2)
    }

    @Test func months() {
        #expect(Month("2026-12")?.next == Month("2027-01"))
        #expect(Day("2026-11-22")?.month == Month("2026-11"))
        #expect(Month("2026-13") == nil)
        #expect(Month("2026-1") == nil)
        #expect(Month("2026-02")!.firstDay == Day("2026-02-01"))
    }
}
