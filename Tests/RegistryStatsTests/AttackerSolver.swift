@testable import RegistryStats

/// An independent attacker for the suppression tests: integer search over every table
/// consistent with what is printed (published values, `<k` = 1…k−1, `x` = 0 or more, every row
/// and column adding up), with line propagation (a line with one unknown left fixes it).
/// It does not share code with `SuppressionAudit`.
struct AttackerSolver {
    let table: MarginTable
    let status: [[CellStatus]]
    let k: Int
    /// Complementary cells are searched up to this value.
    let cap: Int
    var budget = 3_000_000

    init(_ table: MarginTable, _ status: [[CellStatus]], k: Int) {
        self.table = table
        self.status = status
        self.k = k
        cap = (table.cells.joined().max() ?? 0) + k + 2
    }

    var lines: [[(Int, Int)]] {
        let rows = (0...table.rows).map { r in (0...table.columns).map { (r, $0) } }
        let cols = (0...table.columns).map { c in (0...table.rows).map { ($0, c) } }
        return rows + cols
    }

    func domain(_ r: Int, _ c: Int) -> ClosedRange<Int> {
        switch status[r][c] {
        case .published: table[r, c]...table[r, c]
        case .primary: 1...(k - 1)
        case .complementary: 0...cap
        }
    }

    /// Each line: inner cells add up to the line's total (the last cell of the line).
    func consistent(_ v: [[Int?]]) -> Bool? {
        for line in lines {
            let values = line.map { v[$0.0][$0.1] }
            if values.contains(where: { $0 == nil }) { continue }
            let inner = values.dropLast().reduce(0) { $0 + $1! }
            if inner != values.last!! { return false }
        }
        return true
    }

    /// Whether some consistent table gives cell (r, c) the value `value`. Nil: budget exhausted.
    mutating func feasible(_ r: Int, _ c: Int, _ value: Int) -> Bool? {
        var v: [[Int?]] = (0...table.rows).map { rr in (0...table.columns).map { cc in status[rr][cc] == .published ? table[rr, cc] : nil }
        }
        guard domain(r, c).contains(value) else { return false }
        v[r][c] = value
        return search(&v)
    }

    mutating func search(_ v: inout [[Int?]]) -> Bool? {
        budget -= 1
        if budget < 0 { return nil }
        // Propagate: a line with one unknown fixes it.
        var trail: [(Int, Int)] = []
        defer { for (r, c) in trail { v[r][c] = nil } }
        var changed = true
        while changed {
            changed = false
            for line in lines {
                let unknown = line.filter { v[$0.0][$0.1] == nil }
                guard unknown.count == 1 else { continue }
                let (ur, uc) = unknown[0]
                let isTotal = (ur, uc) == line.last!
                let known = line.dropLast().filter { $0 != (ur, uc) }.reduce(0) { $0 + v[$1.0][$1.1]! }
                let value = isTotal ? known : v[line.last!.0][line.last!.1]! - known
                guard domain(ur, uc).contains(value) else { return false }
                v[ur][uc] = value
                trail.append((ur, uc))
                changed = true
            }
        }
        guard consistent(v) == true else { return false }
        // Branch on the first unknown.
        var next: (Int, Int)?
        for rr in 0...table.rows {
            for cc in 0...table.columns where next == nil && v[rr][cc] == nil { next = (rr, cc) }
        }
        guard let (r, c) = next else { return true }
        var exhausted = false
        for value in domain(r, c) {
            v[r][c] = value
            switch search(&v) {
            case true?:
                v[r][c] = nil
                return true
            case nil: exhausted = true
            case false?: break
            }
            v[r][c] = nil
            if exhausted { return nil }
        }
        return false
    }

    /// Whether the suppressed cell (r, c) can take a value other than its true one; nil when the
    /// search budget ran out.
    mutating func hasAlternative(_ r: Int, _ c: Int) -> Bool? {
        for value in domain(r, c) where value != table[r, c] {
            switch feasible(r, c, value) {
            case true?: return true
            case nil: return nil
            case false?: continue
            }
        }
        return false
    }
}

/// The simple attacker: interval propagation over every row and column sum until nothing
/// changes. Returns the cells it pins to one value.
func propagationDetermined(_ table: MarginTable, _ status: [[CellStatus]], k: Int) -> [SuppressionAudit.Cell] {
    let big = 1 << 40
    var lo = (0...table.rows).map { r in
        (0...table.columns).map { c -> Int in
            switch status[r][c] {
            case .published: table[r, c]
            case .primary: 1
            case .complementary: 0
            }
        }
    }
    var hi = (0...table.rows).map { r in
        (0...table.columns).map { c -> Int in
            switch status[r][c] {
            case .published: table[r, c]
            case .primary: k - 1
            case .complementary: big
            }
        }
    }
    let rows = (0...table.rows).map { r in (0...table.columns).map { (r, $0) } }
    let cols = (0...table.columns).map { c in (0...table.rows).map { ($0, c) } }
    var changed = true
    while changed {
        changed = false
        for line in rows + cols {
            let total = line.last!
            let inner = Array(line.dropLast())
            // total = Σ inner
            let sumLo = inner.reduce(0) { $0 + lo[$1.0][$1.1] }
            let sumHi = inner.reduce(0) { min(big, $0 + hi[$1.0][$1.1]) }
            if sumLo > lo[total.0][total.1] {
                lo[total.0][total.1] = sumLo
                changed = true
            }
            if sumHi < hi[total.0][total.1] {
                hi[total.0][total.1] = sumHi
                changed = true
            }
            for cell in inner {
                let othersLo = sumLo - lo[cell.0][cell.1]
                let othersHi = sumHi >= big ? big : sumHi - hi[cell.0][cell.1]
                let newHi = hi[total.0][total.1] - othersLo
                let newLo = othersHi >= big ? 0 : lo[total.0][total.1] - othersHi
                if newHi < hi[cell.0][cell.1] {
                    hi[cell.0][cell.1] = newHi
                    changed = true
                }
                if newLo > lo[cell.0][cell.1] {
                    lo[cell.0][cell.1] = newLo
                    changed = true
                }
            }
        }
    }
    var out: [SuppressionAudit.Cell] = []
    for r in 0...table.rows {
        for c in 0...table.columns where status[r][c].isSuppressed && lo[r][c] == hi[r][c] { out.append(.init(r, c)) }
    }
    return out
}

/// A reproducible pseudo-random source (SplitMix64) for tests.
struct SplitMix: UniformSource, RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform(below bound: UInt32) throws -> UInt32 { UInt32.random(in: 0..<bound, using: &self) }
}
