/// Small-cell suppression with complementary suppression (docs/PROTOCOL.md §Statistics).
///
/// 1. Primary: every cell, margins included, with a value from 1 to k−1 is suppressed (`<k`).
///    Zero is published: a count of nobody discloses nobody.
/// 2. Complementary, to a fixed point: while `SuppressionAudit` finds a suppressed cell whose
///    value follows from the published cells and totals, suppress the cheapest published cell
///    (inner cells before totals, small before large) in its row or column that protects it;
///    failing one, the cheapest rectangle of up to three cells that does; failing that, the
///    whole table. Each round suppresses at least one more cell, so it ends.
/// 3. If even the whole table suppressed leaves a cell determined (it cannot with k ≥ 3, but the
///    rule does not rely on it), every cell is shown as `x`, which bounds nothing.
public enum Suppression {
    public static func apply(_ table: MarginTable, k: Int) -> [[CellStatus]] {
        var status = (0...table.rows).map { r in
            (0...table.columns).map { c -> CellStatus in (1..<max(k, 1)).contains(table[r, c]) ? .primary : .published }
        }
        while let cell = SuppressionAudit.determinedCells(table, status, k: k).first {
            if let protection = cheapestProtection(for: cell, table, status, k: k) {
                for p in protection { status[p.row][p.column] = .complementary }
                continue
            }
            let published = (0...table.rows).flatMap { r in (0...table.columns).map { SuppressionAudit.Cell(r, $0) } }
                .filter { status[$0.row][$0.column] == .published }
            if published.isEmpty { break }
            for p in published { status[p.row][p.column] = .complementary }
        }
        if !SuppressionAudit.determinedCells(table, status, k: k).isEmpty {
            status = status.map { $0.map { _ in CellStatus.complementary } }
        }
        return status
    }

    /// What suppressing a published cell costs: totals cost more than inner cells (they are what
    /// readers use most), then the value hidden.
    static func cost(_ cell: SuppressionAudit.Cell, _ table: MarginTable) -> Int {
        (table.isMargin(cell.row, cell.column) ? 1_000_000_000 : 0) + table[cell.row, cell.column] + 1
    }

    static func cheapestProtection(
        for cell: SuppressionAudit.Cell, _ table: MarginTable, _ status: [[CellStatus]], k: Int
    ) -> [SuppressionAudit.Cell]? {
        typealias Cell = SuppressionAudit.Cell
        func published(_ c: Cell) -> Bool { status[c.row][c.column] == .published }
        func protects(_ extra: [Cell]) -> Bool {
            var trial = status
            for e in extra { trial[e.row][e.column] = .complementary }
            return !SuppressionAudit.isDetermined(cell, table, trial, k: k)
        }
        let inRow = (0...table.columns).map { Cell(cell.row, $0) }.filter { $0 != cell && published($0) }
        let inColumn = (0...table.rows).map { Cell($0, cell.column) }.filter { $0 != cell && published($0) }
        if let best = (inRow + inColumn).sorted(by: { cost($0, table) < cost($1, table) }).first(where: { protects([$0]) }) {
            return [best]
        }
        // A rectangle: one cell in the row, one in the column, and the corner they share.
        var best: (cost: Int, cells: [Cell])?
        for a in (0...table.columns).map({ Cell(cell.row, $0) }) where a != cell {
            for b in (0...table.rows).map({ Cell($0, cell.column) }) where b != cell {
                let corner = Cell(b.row, a.column)
                let extra = [a, b, corner].filter(published)
                guard !extra.isEmpty else { continue }
                let total = extra.reduce(0) { $0 + cost($1, table) }
                if let current = best, current.cost <= total { continue }
                if protects(extra) { best = (total, extra) }
            }
        }
        return best?.cells
    }
}
