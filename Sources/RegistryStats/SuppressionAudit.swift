/// Exact disclosure audit of a suppression pattern (docs/PROTOCOL.md §Statistics, disclosure
/// control).
///
/// What an attacker knows: every published cell; that a primary cell is in 1 … k−1 (zeros are
/// published, so `<k` means at least 1); that a complementary cell is at least 0; and that every
/// row and column, margins included, adds up. A suppressed cell is *determined* when only one
/// value is consistent with all of that.
///
/// Method: flip the sign of the single margins (row and column totals) and every row and column
/// of the augmented grid sums to zero. Any other table consistent with the published facts then
/// differs from the true one by a circulation on the bipartite graph rows ↔ columns whose edges
/// are the suppressed cells, and by conformal decomposition (the constraint matrix is totally
/// unimodular) a cell can take another value if and only if one simple cycle through it can be
/// moved by ±1 within every cell's bounds. So: a cell can go up iff it has room to rise and its
/// column reaches its row in the residual graph without it; down likewise. This is exact over
/// the integers, and equals what linear programming would find.
public enum SuppressionAudit {
    /// The suppressed cells whose value follows from the published ones.
    public static func determinedCells(_ table: MarginTable, _ status: [[CellStatus]], k: Int) -> [Cell] {
        var out: [Cell] = []
        for r in 0...table.rows {
            for c in 0...table.columns where status[r][c].isSuppressed {
                if isDetermined(Cell(r, c), table, status, k: k) { out.append(Cell(r, c)) }
            }
        }
        return out
    }

    /// Whether the suppressed `cell` is pinned to its value.
    public static func isDetermined(_ cell: Cell, _ table: MarginTable, _ status: [[CellStatus]], k: Int) -> Bool {
        let graph = Residual(table, status, k: k)
        let rowNode = cell.row
        let columnNode = table.rows + 1 + cell.column
        if graph.canIncrease(cell), graph.reaches(from: columnNode, to: rowNode, avoiding: cell) { return false }
        if graph.canDecrease(cell), graph.reaches(from: rowNode, to: columnNode, avoiding: cell) { return false }
        return true
    }

    public struct Cell: Hashable, Sendable, CustomStringConvertible {
        public var row: Int
        public var column: Int
        public init(_ row: Int, _ column: Int) {
            self.row = row
            self.column = column
        }
        public var description: String { "(\(row), \(column))" }
    }

    /// The residual graph of the sign-flipped grid: nodes are rows `0...rows` then columns
    /// `0...columns`; a suppressed cell gives an arc row → column when its signed value can rise
    /// and column → row when it can fall.
    struct Residual {
        let table: MarginTable
        let status: [[CellStatus]]
        let k: Int
        var arcs: [[(to: Int, cell: Cell)]]

        init(_ table: MarginTable, _ status: [[CellStatus]], k: Int) {
            self.table = table
            self.status = status
            self.k = k
            arcs = Array(repeating: [], count: table.rows + table.columns + 2)
            for r in 0...table.rows {
                for c in 0...table.columns where status[r][c].isSuppressed {
                    let cell = Cell(r, c)
                    let columnNode = table.rows + 1 + c
                    if canIncrease(cell) { arcs[r].append((columnNode, cell)) }
                    if canDecrease(cell) { arcs[columnNode].append((r, cell)) }
                }
            }
        }

        /// Margins (exactly one of row, column is the totals line) enter with a minus sign.
        func sign(_ cell: Cell) -> Int { (cell.row == table.rows) == (cell.column == table.columns) ? 1 : -1 }

        func roomUp(_ cell: Cell) -> Bool {
            status[cell.row][cell.column] == .primary ? table[cell.row, cell.column] < k - 1 : true
        }

        func roomDown(_ cell: Cell) -> Bool {
            table[cell.row, cell.column] > (status[cell.row][cell.column] == .primary ? 1 : 0)
        }

        /// The signed value can rise by one.
        func canIncrease(_ cell: Cell) -> Bool { sign(cell) > 0 ? roomUp(cell) : roomDown(cell) }
        /// The signed value can fall by one.
        func canDecrease(_ cell: Cell) -> Bool { sign(cell) > 0 ? roomDown(cell) : roomUp(cell) }

        func reaches(from start: Int, to goal: Int, avoiding cell: Cell) -> Bool {
            var seen = Array(repeating: false, count: arcs.count)
            var stack = [start]
            seen[start] = true
            while let node = stack.popLast() {
                if node == goal { return true }
                for arc in arcs[node] where arc.cell != cell && !seen[arc.to] {
                    seen[arc.to] = true
                    stack.append(arc.to)
                }
            }
            return false
        }
    }
}
