#!/usr/bin/env python3
"""One table of anonreg against its pgcrypto peer (issue 16), for `make bench`.

  bench/compare.py [--results DIR] [--anonreg FILE] [--peer FILE] [--out FILE]

By default it takes the newest (by modification time, so a fresh run wins over committed
files) `DIR/*-bench.json` that `anonreg-bench run` wrote and the newest `DIR/*-pgcrypto.json`
that bench/pgcrypto-peer.sh wrote, prints a markdown table of check-ups and status reads at 8
and 64 connections, and writes it to DIR/<UTC timestamp>-compare.md. Without a peer result
(PostgreSQL not installed) it says so and exits 0.
"""

import argparse
import datetime
import glob
import json
import os
import sys

OPS = [("checkup", "check-up"), ("status", "status read (audited)")]
CONNECTIONS = [8, 64]


def newest(pattern):
    files = glob.glob(pattern)
    return max(files, key=lambda f: (os.path.getmtime(f), os.path.basename(f))) if files else None


def stamp(path):
    """The UTC time in a result's name (<YYYYMMDDTHHMMSSZ>-kind.json), or None."""
    try:
        return datetime.datetime.strptime(os.path.basename(path)[:16], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None


def ms(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def rate(v):
    return f"{v:,.0f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    parser.add_argument("--anonreg", help="an anonreg-bench run result (default: the newest DIR/*-bench.json)")
    parser.add_argument("--peer", help="a pgcrypto peer result (default: the newest DIR/*-pgcrypto.json)")
    parser.add_argument("--out", help="where to write the table (default: DIR/<UTC timestamp>-compare.md)")
    args = parser.parse_args()

    anonreg_path = args.anonreg or newest(os.path.join(args.results, "*-bench.json"))
    peer_path = args.peer or newest(os.path.join(args.results, "*-pgcrypto.json"))
    if not anonreg_path:
        print(f"compare: no anonreg-bench run result in {args.results}; run `make bench` first")
        return 1
    if not peer_path:
        print(f"compare: no pgcrypto peer result in {args.results} (PostgreSQL 15 not installed?); table skipped")
        return 0
    anonreg = json.load(open(anonreg_path))
    peer = json.load(open(peer_path))
    if anonreg.get("kind") != "bench" or peer.get("kind") != "pgcrypto":
        print(f"compare: {anonreg_path} or {peer_path} is not the expected kind of result", file=sys.stderr)
        return 1

    def at(figures, op, n):
        return next((f for f in figures if f["op"] == op and f["concurrency"] == n), None)

    md = "## anonreg and its pgcrypto peer (issue 16)\n\n"
    md += f"- anonreg: `{os.path.basename(anonreg_path)}`: anonregd over its Unix socket, HTTP/1.1 keep-alive, "
    md += f"closed loop, {anonreg['secondsPerPhase']:g} s per phase. A check-up is a POST dated the day after "
    md += "that case's last, as a clinic records them; a status read is a GET; each appends its hash-chained audit entry.\n"
    md += f"- peer: `{os.path.basename(peer_path)}`: {peer['postgres']}, pgcrypto, pgbench -M prepared over the "
    md += f"Unix socket, closed loop, {peer['secondsPerPhase']:g} s per phase, {peer['subjects']} subjects; "
    md += ", ".join(f"{k}={v}" for k, v in sorted(peer["settings"].items()) if k != "listen_addresses")
    md += ". One transaction each (bench/pgcrypto-peer/*.sql).\n"
    times = [stamp(anonreg_path), stamp(peer_path)]
    gap = abs((times[0] - times[1]).total_seconds()) if None not in times else 0
    if gap > 3600:
        md += f"- **The two results are {gap / 3600:.1f} h apart**: not the same session, so the ratio means less.\n"
    md += "\n| operation | connections | anonreg ops/s | peer tx/s | anonreg / peer | anonreg p50 / p99 ms | peer p50 / p99 ms |\n"
    md += "|---|---:|---:|---:|---:|---:|---:|\n"
    for op, name in OPS:
        for n in CONNECTIONS:
            a = at(anonreg.get("socket", []), op, n)
            p = at(peer.get("figures", []), op, n)
            if not a and not p:
                continue
            ratio = f"{a['perSecond'] / p['perSecond']:.2f}" if a and p and p["perSecond"] > 0 else "–"
            md += (
                f"| {name} | {n} | {rate(a['perSecond']) if a else '–'} | {rate(p['perSecond']) if p else '–'} | {ratio} | "
                f"{ms(a['p50ms']) + ' / ' + ms(a['p99ms']) if a else '–'} | "
                f"{ms(p['p50ms']) + ' / ' + ms(p['p99ms']) if p else '–'} |\n"
            )
    errors = [f for f in anonreg.get("socket", []) + peer.get("figures", []) if f["op"] in dict(OPS) and f.get("errors")]
    for f in errors:
        md += f"\n- {f['side']} {f['op']} x{f['concurrency']}: {f['errors']} errors"
    print("\n" + md)
    out = args.out or os.path.join(
        args.results, datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-compare.md")
    with open(out, "w") as f:
        f.write(md)
    print(f"table: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
