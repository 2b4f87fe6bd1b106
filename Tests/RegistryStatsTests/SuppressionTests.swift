import Testing

@testable import RegistryStats

@Suite struct SuppressionTests {
    /// Checks a suppressed table the way an attacker would: every small cell hidden, and no
    /// hidden cell pinned, by propagation or by exhaustive integer search.
    /// `totalsOverMonthsAsX`: month-by-month suppression shows a hidden total over months as `x`
    /// whatever its size (a `<k` there would bound it).
    func expectSafe(
        _ table: MarginTable, _ status: [[CellStatus]], k: Int, totalsOverMonthsAsX: Bool = false,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for r in 0...table.rows {
            for c in 0...table.columns {
                let v = table[r, c]
                if v >= 1 && v < k && totalsOverMonthsAsX && r == table.rows {
                    #expect(status[r][c] == .complementary, "total (\(r), \(c)) = \(v) must be hidden as x", sourceLocation: sourceLocation)
                    continue
                }
                if v >= 1 && v < k {
                    #expect(status[r][c] == .primary, "cell (\(r), \(c)) = \(v) must be suppressed", sourceLocation: sourceLocation)
                }
                if status[r][c] == .primary { #expect(v >= 1 && v < k, sourceLocation: sourceLocation) }
            }
        }
        #expect(propagationDetermined(table, status, k: k).isEmpty, "propagation pins a hidden cell", sourceLocation: sourceLocation)
        var solver = AttackerSolver(table, status, k: k)
        for r in 0...table.rows {
            for c in 0...table.columns where status[r][c].isSuppressed {
                let alternative = solver.hasAlternative(r, c)
                #expect(alternative == true, "hidden cell (\(r), \(c)) = \(table[r, c]) can be worked out", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func aLoneSmallCellGetsComplementaryCellsInItsRowAndColumn() {
        let table = MarginTable(inner: [[3, 10, 12], [8, 9, 20], [15, 6, 7]], columns: 3)
        let status = Suppression.apply(table, k: 5)
        #expect(status[0][0] == .primary)
        let row0 = status[0].filter(\.isSuppressed).count
        let col0 = status.map { $0[0] }.filter(\.isSuppressed).count
        #expect(row0 >= 2 && col0 >= 2)
        // Totals stay printed when inner cells can protect the small one.
        #expect(status[3][3] == .published)
        #expect(status[0][3] == .published)
        expectSafe(table, status, k: 5)
    }

    @Test func twoOnesInOneRowAreNotLeftAsAPair() {
        // 1 + 1 = 2 with both at least 1 pins both: a pair alone does not protect them.
        let table = MarginTable(inner: [[1, 1, 10], [7, 8, 9], [6, 12, 5]], columns: 3)
        let status = Suppression.apply(table, k: 5)
        expectSafe(table, status, k: 5)
    }

    @Test func smallTotalsAreSuppressedToo() {
        let table = MarginTable(inner: [[1, 2], [0, 0], [9, 7]], columns: 2)
        let status = Suppression.apply(table, k: 5)
        #expect(status[0][2] == .primary)  // row total 3
        #expect(status[1][0] == .published && status[1][2] == .published)  // zeros are shown
        expectSafe(table, status, k: 5)
    }

    @Test func aSingleColumnSeriesProtectsItsSmallMonth() {
        // The layout without clinics: one column and its total.
        let table = MarginTable(inner: [[12], [3], [20], [9]], columns: 1)
        let status = Suppression.apply(table, k: 5)
        expectSafe(table, status, k: 5)
    }

    @Test func auditMatchesExhaustiveSearchOnRandomPatterns() {
        var random = SplitMix(seed: 7)
        var compared = 0
        for _ in 0..<150 {
            let rows = Int.random(in: 1...3, using: &random)
            let columns = Int.random(in: 1...3, using: &random)
            let inner = (0..<rows).map { _ in (0..<columns).map { _ in Int.random(in: 0...9, using: &random) } }
            let table = MarginTable(inner: inner, columns: columns)
            // A random pattern: primary where small, plus random extra cells.
            let status = (0...rows).map { r in
                (0...columns).map { c -> CellStatus in
                    (1...4).contains(table[r, c]) ? .primary : (Int.random(in: 0..<3, using: &random) == 0 ? .complementary : .published)
                }
            }
            var solver = AttackerSolver(table, status, k: 5)
            for r in 0...rows {
                for c in 0...columns where status[r][c].isSuppressed {
                    guard let alternative = solver.hasAlternative(r, c) else { continue }
                    compared += 1
                    let determined = SuppressionAudit.isDetermined(.init(r, c), table, status, k: 5)
                    #expect(determined == !alternative, "audit and search disagree on (\(r), \(c)) of \(inner) with \(status)")
                }
            }
        }
        #expect(compared > 300)
    }

    @Test func randomTablesAreSafeAfterSuppression() {
        var random = SplitMix(seed: 2026)
        for round in 0..<120 {
            let rows = Int.random(in: 1...4, using: &random)
            let columns = Int.random(in: 1...3, using: &random)
            let inner = (0..<rows).map { _ in
                (0..<columns).map { _ in
                    Int.random(in: 0..<2, using: &random) == 0
                        ? Int.random(in: 0...4, using: &random) : Int.random(in: 5...14, using: &random)
                }
            }
            let k = [3, 5][round % 2]
            let table = MarginTable(inner: inner, columns: columns)
            let status = Suppression.apply(table, k: k)
            #expect(SuppressionAudit.determinedCells(table, status, k: k).isEmpty)
            expectSafe(table, status, k: k)
        }
    }

    @Test func monthByMonthSuppressionIsSafeOnRandomTables() {
        var random = SplitMix(seed: 11)
        for round in 0..<120 {
            let rows = Int.random(in: 1...4, using: &random)
            let columns = Int.random(in: 1...3, using: &random)
            let inner = (0..<rows).map { _ in
                (0..<columns).map { _ in
                    Int.random(in: 0..<2, using: &random) == 0
                        ? Int.random(in: 0...4, using: &random) : Int.random(in: 5...14, using: &random)
                }
            }
            let k = [3, 5][round % 2]
            let table = MarginTable(inner: inner, columns: columns)
            let status = Suppression.applyByMonth(table, k: k)
            #expect(SuppressionAudit.determinedCells(table, status, k: k).isEmpty)
            #expect(
                !status.joined().allSatisfy { $0 == .complementary } || table.cells.joined().allSatisfy { $0 < k },
                "no fallback to hiding everything for \(inner)")
            expectSafe(table, status, k: k, totalsOverMonthsAsX: true)
        }
    }

    /// Two answers for overlapping ranges must show each month the same way, and a total over
    /// months only when it adds up printed cells; otherwise they combine. The reviewer's case:
    /// clinics A, B, C; month 1 = [10, 20, 20], month 2 = [3, 50, 50]. Asking for months 1–2
    /// and then for month 1 alone must not give A's month-2 count as 13 − 10.
    @Test func overlappingRangesShowEachMonthTheSameWay() {
        let both = MarginTable(inner: [[10, 20, 20], [3, 50, 50]], columns: 3)
        let first = MarginTable(inner: [[10, 20, 20]], columns: 3)
        let bothStatus = Suppression.applyByMonth(both, k: 5)
        let firstStatus = Suppression.applyByMonth(first, k: 5)
        #expect(bothStatus[0] == firstStatus[0], "month 1 is shown the same way in both answers")
        #expect(bothStatus[1][0] == .primary)
        #expect(bothStatus[2][0].isSuppressed, "A's total over both months would give month 2 away")
        // The old whole-table rule did leak here: it hid month 1's A cell and printed A's total.
        let old = Suppression.apply(both, k: 5)
        let oldLeaks = old[0][0].isSuppressed && !old[2][0].isSuppressed && !Suppression.apply(first, k: 5)[0][0].isSuppressed
        #expect(oldLeaks, "the case above is one the range-dependent rule gets wrong")

        var random = SplitMix(seed: 99)
        for _ in 0..<100 {
            let rows = Int.random(in: 2...5, using: &random)
            let columns = Int.random(in: 1...3, using: &random)
            let inner = (0..<rows).map { _ in
                (0..<columns).map { _ in
                    Int.random(in: 0..<2, using: &random) == 0
                        ? Int.random(in: 0...4, using: &random) : Int.random(in: 5...30, using: &random)
                }
            }
            let whole = Suppression.applyByMonth(MarginTable(inner: inner, columns: columns), k: 5)
            let from = Int.random(in: 0..<rows, using: &random)
            let to = Int.random(in: from..<rows, using: &random)
            let part = Suppression.applyByMonth(MarginTable(inner: Array(inner[from...to]), columns: columns), k: 5)
            for r in from...to { #expect(part[r - from] == whole[r], "month \(r) of \(inner) differs between ranges") }
        }
    }

    @Test func nothingIsSuppressedWithoutSmallCells() {
        let table = MarginTable(inner: [[0, 10], [6, 0]], columns: 2)
        let status = Suppression.apply(table, k: 5)
        #expect(status.joined().allSatisfy { $0 == .published })
    }
}
