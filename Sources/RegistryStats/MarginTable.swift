/// A frequency table with its margins, as published: `rows × columns` inner cells, a total per
/// row (last column), a total per column (last row) and the grand total (last row, last column).
/// Every cell of this augmented `(rows+1) × (columns+1)` grid can be published or suppressed.
public struct MarginTable: Sendable, Equatable {
    /// The augmented grid: `cells[r][c]`, `r == rows` is the totals row, `c == columns` the totals
    /// column.
    public private(set) var cells: [[Int]]
    public let rows: Int
    public let columns: Int

    /// Builds the margins from the inner cells (all rows must have `columns` cells).
    public init(inner: [[Int]], columns: Int) {
        precondition(inner.allSatisfy { $0.count == columns }, "every row has the same number of columns")
        precondition(inner.joined().allSatisfy { $0 >= 0 }, "counts are not negative")
        rows = inner.count
        self.columns = columns
        var grid = inner.map { $0 + [$0.reduce(0, +)] }
        grid.append((0...columns).map { c in grid.reduce(0) { $0 + $1[c] } })
        cells = grid
    }

    public subscript(row: Int, column: Int) -> Int { cells[row][column] }

    /// Whether (row, column) is a margin (row total, column total or grand total).
    public func isMargin(_ row: Int, _ column: Int) -> Bool { row == rows || column == columns }
}

/// How a cell is published.
public enum CellStatus: String, Sendable, Equatable, Codable {
    /// Shown as its value.
    case published
    /// 1 … k−1: shown as `<k` (primary suppression).
    case primary
    /// Hidden so that a primary cell cannot be worked out from the others: shown as `x`, saying
    /// nothing about its size (complementary suppression).
    case complementary

    public var isSuppressed: Bool { self != .published }
}
