/// Suppression whose pattern does not depend on the range asked (docs/PROTOCOL.md §Statistics,
/// "overlapping ranges").
///
/// With `Suppression.apply` over a whole table, which cells hide depends on every month in the
/// range, so two answers for overlapping ranges can be combined: a cell hidden in one answer is
/// printed in the other, and a printed total over months gives away its neighbour. Here:
///
/// 1. Each month's row (its clinic cells and its total) is suppressed on its own, exactly as a
///    one-row table: the pattern of a month depends only on that month's counts.
/// 2. A total over months (a column total, or the grand total) is printed only when every cell
///    it adds up is printed, so it is a sum of printed numbers and tells nothing new.
///
/// Every answer then shows each month the same way, and nothing printed in one answer can be
/// combined with another to narrow a hidden cell beyond what each row already protects.
extension Suppression {
    ///
    /// `fixedColumns` are the columns every month has (the configured clinics). Another column
    /// takes part in a month's suppression only where that month has a count in it, because
    /// which extra columns a table has depends on the range; in the other months its cell is a
    /// printed 0, which adds nothing.
    public static func applyByMonth(_ table: MarginTable, k: Int, fixedColumns: Set<Int>? = nil) -> [[CellStatus]] {
        let rows = table.rows
        let columns = table.columns
        var status: [[CellStatus]] = []
        for r in 0..<rows {
            let used = (0..<columns).filter { fixedColumns?.contains($0) ?? true || table[r, $0] != 0 }
            var row = [CellStatus](repeating: .published, count: columns + 1)
            let pattern = apply(MarginTable(inner: [used.map { table[r, $0] }], columns: used.count), k: k)[0]
            for (i, c) in used.enumerated() { row[c] = pattern[i] }
            row[columns] = pattern[used.count]
            status.append(row)
        }
        // A hidden total over months is shown as `x` even when it is below k: `<k` would bound
        // it, and with every hidden cell known to be at least 1 the bound can pin them (four
        // months of 1 under a total `<5` are all 1).
        func hidden(_ value: Int) -> CellStatus { .complementary }
        var totals: [CellStatus] = (0..<columns).map { c in
            (0..<rows).allSatisfy { status[$0][c] == .published } ? .published : hidden(table[rows, c])
        }
        let grand = (0..<rows).allSatisfy { status[$0][columns] == .published } ? CellStatus.published : hidden(table[rows, columns])
        totals.append(grand)
        status.append(totals)
        // The rule above cannot leave a cell determined; the audit makes sure of it.
        if !SuppressionAudit.determinedCells(table, status, k: k).isEmpty {
            return status.map { $0.map { _ in CellStatus.complementary } }
        }
        return status
    }
}
