#!/usr/bin/env python3
"""One table of anonreg on SQLite, on PostgreSQL with one and two nodes, and the pgcrypto peer
(issue 17), from the newest results bench/postgres-nodes.sh left in DIR:

  DIR/*-bench.json               anonreg-bench run on SQLite
  DIR/*-bench-postgresql-1.json  the same on PostgreSQL, one node
  DIR/*-bench-postgresql-2.json  the same, two nodes sharing the connections
  DIR/*-pgcrypto.json            bench/pgcrypto-peer.sh

Prints a markdown table (throughput and p99 per operation measured and connection count; the
half-peak p99 of each) with each anonreg figure's ratio to the peer where the peer does that
work (check-ups and audited status reads), and writes it to
DIR/<UTC timestamp>-nodes.md.
"""

import argparse
import datetime
import glob
import json
import os
import sys

OPS = [
    ("enrol", "enrolment"),
    ("checkup", "check-up"),
    ("status", "status read (audited)"),
    ("due", "due list"),
    ("oprf", "OPRF evaluation"),
    ("oprf-batch-10", "OPRF batch of 10"),
    ("mixed", "mixed"),
]
CONNECTIONS = [8, 64]
RUNS = [("bench", "SQLite"), ("bench-postgresql-1", "PostgreSQL, 1 node"), ("bench-postgresql-2", "PostgreSQL, 2 nodes")]


def newest(pattern):
    files = glob.glob(pattern)
    return max(files, key=lambda f: (os.path.getmtime(f), os.path.basename(f))) if files else None


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args()
    runs = {}
    for kind, label in RUNS:
        path = newest(os.path.join(args.results, f"*-{kind}.json"))
        if not path:
            print(f"nodes-table: no {kind} result in {args.results}; run bench/postgres-nodes.sh")
            return 1
        runs[label] = (path, load(path))
    peer_path = newest(os.path.join(args.results, "*-pgcrypto.json"))
    peer = load(peer_path) if peer_path else None

    def figure(report, op, n):
        for f in report.get("socket", []):
            if f["op"] == op and f["concurrency"] == n and f["side"] == "socket":
                return f
        return None

    def peer_figure(op, n):
        if not peer:
            return None
        for p in peer.get("figures", []):
            if p.get("op") == op and p.get("concurrency") == n:
                return p
        return None

    lines = ["| operation | connections | " + " | ".join(f"{label} /s (p99 ms)" for label in runs) + " | pgcrypto peer /s (p99 ms) | "
             + " | ".join(f"{label} / peer" for label in runs) + " |"]
    lines.append("|---|---:|" + "---:|" * (2 * len(runs) + 1))
    # Operations no run measured (postgres-nodes.sh measures check-ups and status reads unless
    # given --ops) are left out.
    measured = [(op, name) for op, name in OPS if any(figure(report, op, n) for _, report in runs.values() for n in CONNECTIONS)]
    for op, name in measured:
        for n in CONNECTIONS:
            cells, ratios = [], []
            p = peer_figure(op, n)
            peer_rate = p.get("perSecond") if p else None
            for label, (_, report) in runs.items():
                f = figure(report, op, n)
                if not f:
                    cells.append("-")
                    ratios.append("-")
                    continue
                cells.append(f"{f['perSecond']:,.0f} ({f['p99ms']:.1f})")
                ratios.append(f"{f['perSecond'] / peer_rate:.2f}" if peer_rate else "-")
            peer_cell = f"{peer_rate:,.0f} ({p.get('p99ms', 0):.1f})" if p else "-"
            lines.append(f"| {name} | {n} | " + " | ".join(cells) + f" | {peer_cell} | " + " | ".join(ratios) + " |")
    lines.append("")
    lines.append("Half of each operation's peak, paced, p99 ms (goal: under 10 ms on PostgreSQL):")
    lines.append("")
    lines.append("| operation | " + " | ".join(runs) + " |")
    lines.append("|---|" + "---:|" * len(runs))
    for op, name in measured:
        cells = []
        for label, (_, report) in runs.items():
            hp = [f for f in report.get("halfPeak", []) if f["op"] == op]
            cells.append(f"{hp[0]['p99ms']:.1f} at {hp[0]['perSecond']:,.0f}/s" if hp else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Sources: " + ", ".join(os.path.basename(path) for path, _ in runs.values())
                 + (f", {os.path.basename(peer_path)}" if peer_path else ", no pgcrypto peer result"))
    table = "\n".join(lines) + "\n"
    print(table)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = os.path.join(args.results, f"{stamp}-nodes.md")
    with open(out, "w") as f:
        f.write(table)
    print(f"table: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
