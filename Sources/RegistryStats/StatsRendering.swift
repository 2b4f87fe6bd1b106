import RegistryProtocol

/// Text renderings of a statistics response: CSV (the daemon's `format=csv` and
/// `anonreg stats --format csv`) and aligned tables for people (`anonreg stats`).
public enum StatsRendering {
    /// Long-format CSV, one line per printed cell: `metric,category,month,clinic,value`, where
    /// month `total` is the sum over months, clinic `total` the sum over clinics, and value is the
    /// number, `<k` or `x`.
    public static func csv(_ response: StatsResponse) -> String {
        var lines = ["metric,category,month,clinic,value"]
        for table in response.tables {
            for row in table.rows {
                for (clinic, cell) in zip(table.columns, row.cells) {
                    lines.append([table.metric, table.category, row.month.description, clinic, cell.shown].joined(separator: ","))
                }
                lines.append([table.metric, table.category, row.month.description, "total", row.total.shown].joined(separator: ","))
            }
            for (clinic, cell) in zip(table.columns, table.columnTotals ?? []) {
                lines.append([table.metric, table.category, "total", clinic, cell.shown].joined(separator: ","))
            }
            if let total = table.total {
                lines.append([table.metric, table.category, "total", "total", total.shown].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Aligned tables: per category, months × metrics (totals over clinics); with a clinic
    /// breakdown, per metric and category, months × clinics.
    public static func text(_ response: StatsResponse) -> String {
        var out: [String] = []
        let note =
            "Cells from 1 to \(response.k - 1) are shown as <\(response.k); x hides a cell that would reveal one. "
            + "Unique persons are counted only for closed months (through \(response.closedThrough))."
        out.append("Statistics \(response.from) to \(response.to), computed on \(response.generatedOn).")
        if let privacy = response.privacy {
            out.append(
                "Noisy release (\(privacy.mechanism) mechanism, ε = \(privacy.epsilon)), stored on \(privacy.releasedOn): asking again returns the same numbers."
            )
        }
        out.append(note)
        let categories = response.tables.map(\.category).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        if !response.byClinic {
            for category in categories {
                let tables = response.tables.filter { $0.category == category }
                let months = tables.first?.rows.map(\.month) ?? []
                var rows: [[String]] = months.map { m in
                    [m.description] + tables.map { t in t.rows.first { $0.month == m }?.total.shown ?? "-" }
                }
                rows.append(["total"] + tables.map { $0.total?.shown ?? "-" })
                out.append("")
                out.append("Category \(category)")
                out.append(grid(header: ["month"] + tables.map(\.metric), rows: rows))
            }
        } else {
            for table in response.tables {
                var rows: [[String]] = table.rows.map { r in [r.month.description] + r.cells.map(\.shown) + [r.total.shown] }
                if let totals = table.columnTotals { rows.append(["total"] + totals.map(\.shown) + [table.total?.shown ?? "-"]) }
                out.append("")
                out.append("\(table.metric), category \(table.category)")
                out.append(grid(header: ["month"] + table.columns + ["total"], rows: rows))
            }
        }
        return out.joined(separator: "\n")
    }

    static func grid(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        func line(_ r: [String]) -> String {
            r.enumerated().map { i, text in
                // Month labels left, numbers right.
                let pad = String(repeating: " ", count: widths[i] - text.count)
                return i == 0 ? text + pad : pad + text
            }.joined(separator: "  ")
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line)).joined(
            separator: "\n")
    }
}
