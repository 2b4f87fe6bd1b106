#!/usr/bin/env python3
"""Figures of bench/pgcrypto-peer.sh from pgbench's output and per-transaction logs (-l).

  summary.py line OP CLIENTS THREADS RC PHASE_DIR      one phase, printed as it ends
  summary.py report PHASES OUT_BASE [--seconds ...]    OUT_BASE.json and .md, table printed

Latency percentiles come from the logs (every transaction's time in microseconds, nearest
rank), throughput from pgbench's own "tps = ... (without initial connection time)". The
figures use the field names of anonreg-bench's Figure (Sources/anonreg-bench/Report.swift) so
that bench/compare.py reads both the same way.
"""

import argparse
import glob
import json
import math
import os
import platform
import re


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def figure(op, clients, threads, rc, phase):
    out = open(os.path.join(phase, "out")).read() if os.path.exists(os.path.join(phase, "out")) else ""
    err = open(os.path.join(phase, "err")).read() if os.path.exists(os.path.join(phase, "err")) else ""

    def number(pattern):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else 0.0

    # Column 3 of a log line is the transaction's latency in µs; a failed one says "failed".
    latencies = []
    for path in glob.glob(os.path.join(phase, "tx.*")):
        with open(path) as log:
            for line in log:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies.append(int(fields[2]))
    latencies.sort()
    processed = int(number(r"number of transactions actually processed: (\d+)"))
    failed = int(number(r"number of failed transactions: (\d+)"))
    wal_syncs = None
    try:
        before, after = (int(open(os.path.join(phase, f"wal-syncs-{w}")).read()) for w in ("before", "after"))
        wal_syncs = after - before
    except (OSError, ValueError):
        pass
    note = f"pgbench -n -M prepared -c {clients} -j {threads}"
    if int(rc) != 0:
        first = next((l for l in err.splitlines() if l.strip()), "no message")
        note += f"; pgbench exited {rc}: {first}"
    return {
        "op": op,
        "side": "pgcrypto-peer",
        "concurrency": int(clients),
        "threads": int(threads),
        "requests": processed,
        "errors": failed + (0 if int(rc) == 0 else 1),
        "seconds": number(r"duration: (\d+) s"),
        "perSecond": number(r"tps = ([0-9.]+) \(without initial connection time\)"),
        "p50ms": percentile(latencies, 50) / 1000,
        "p99ms": percentile(latencies, 99) / 1000,
        "p999ms": percentile(latencies, 99.9) / 1000,
        "maxms": (latencies[-1] / 1000) if latencies else 0.0,
        "loggedTransactions": len(latencies),
        "walSyncs": wal_syncs,
        "note": note,
    }


def ms(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def rate(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def line(f):
    return (
        f"  pgcrypto-peer {f['op']} x{f['concurrency']}: {rate(f['perSecond'])}/s p50 {ms(f['p50ms'])} ms "
        f"p99 {ms(f['p99ms'])} ms p99.9 {ms(f['p999ms'])} ms ({f['requests']} ok, {f['errors']} errors)"
        + (f"; {f['walSyncs']} WAL syncs" if f["walSyncs"] is not None else "")
    )


def machine(load_before):
    cpu_model = "unknown"
    mem_kib = 0
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu_model = l.split(":", 1)[1].strip()
                break
        for l in open("/proc/meminfo"):
            if l.startswith("MemTotal"):
                mem_kib = int(l.split()[1])
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpuModel": cpu_model,
        "kernel": platform.release(),
        "memTotalMiB": mem_kib // 1024,
        "loadBefore": load_before,
        "loadAfter": " ".join(open("/proc/loadavg").read().split()[:3]),
    }


def report(args):
    figures = []
    for entry in open(args.phases).read().splitlines():
        op, clients, threads, rc, phase = entry.split(" ", 4)
        figures.append(figure(op, clients, threads, rc, phase))
    result = {
        "kind": "pgcrypto",
        "postgres": args.postgres,
        "settings": dict(kv.split("=", 1) for kv in args.settings.split()),
        "subjects": args.subjects,
        "secondsPerPhase": args.seconds,
        "machine": machine(args.load_before),
        "checkupRowsAtEnd": args.checkups,
        "auditRowsAtEnd": args.audits,
        "databaseBytesAtEnd": args.database_bytes,
        "figures": figures,
    }
    md = "## pgcrypto peer (bench/pgcrypto-peer.sh)\n\n"
    md += f"{result['postgres']}; {args.subjects} subjects; {args.seconds} s per phase; {args.settings}.\n"
    md += f"Machine: {result['machine']['cpus']} CPUs ({result['machine']['cpuModel']}); load average before "
    md += f"{args.load_before}, after {result['machine']['loadAfter']}.\n\n"
    md += "| op | side | conc | tx/s | p50 ms | p99 ms | p99.9 ms | transactions | errors | WAL syncs |\n"
    md += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for f in figures:
        md += (
            f"| {f['op']} | {f['side']} | {f['concurrency']} | {rate(f['perSecond'])} | {ms(f['p50ms'])} | "
            f"{ms(f['p99ms'])} | {ms(f['p999ms'])} | {f['requests']} | {f['errors']} | {f['walSyncs']} |\n"
        )
    with open(args.out_base + ".json", "w") as out:
        json.dump(result, out, indent=2, sort_keys=True)
    with open(args.out_base + ".md", "w") as out:
        out.write(md)
    print("\n" + md)
    print(f"results: {args.out_base}.json and {args.out_base}.md")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("line")
    for name in ["op", "clients", "threads", "rc", "phase"]:
        one.add_argument(name)
    full = sub.add_parser("report")
    full.add_argument("phases")
    full.add_argument("out_base")
    full.add_argument("--seconds", type=float, required=True)
    full.add_argument("--subjects", type=int, required=True)
    full.add_argument("--settings", default="")
    full.add_argument("--load-before", default="")
    full.add_argument("--postgres", default="")
    full.add_argument("--checkups", type=int, default=0)
    full.add_argument("--audits", type=int, default=0)
    full.add_argument("--database-bytes", type=int, default=0)
    args = parser.parse_args()
    if args.command == "line":
        f = figure(args.op, args.clients, args.threads, args.rc, args.phase)
        print(line(f))
        if int(args.rc) != 0:
            print(f"    {f['note']}")
    else:
        report(args)


if __name__ == "__main__":
    main()
