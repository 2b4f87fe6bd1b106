#!/usr/bin/env python3
"""Reads `perf report --no-children --sort dso,sym --stdio -g none` on stdin and prints the
daemon's CPU by category and its top symbols (bench/profile.sh)."""
import re
import sys

CATEGORIES = [
    ("cryptography (libsodium)", lambda dso, sym: "sodium" in dso),
    ("SQLite", lambda dso, sym: "sqlite" in dso or "GRDB" in sym),
    ("JSON (Foundation coders)", lambda dso, sym: "JSON" in sym or "Coder" in sym or "Codable" in sym),
    ("kernel (fsync, sockets, scheduling)", lambda dso, sym: "kernel" in dso),
    ("C library (memcpy, malloc, locks)", lambda dso, sym: dso.startswith("libc")),
    ("Swift runtime (alloc, refcount, metadata, tasks)",
     lambda dso, sym: "libswiftCore" in dso or "swift_" in sym or "libswift_Concurrency" in dso or "libdispatch" in dso),
    ("Foundation (other)", lambda dso, sym: "Foundation" in dso),
    ("NIO / Hummingbird", lambda dso, sym: "NIO" in sym or "Hummingbird" in sym),
    ("anonreg", lambda dso, sym: True),
]

line = re.compile(r"^\s+([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$")
rows = []
for text in sys.stdin:
    m = line.match(text)
    if m:
        rows.append((float(m.group(1)), m.group(2), m.group(3).strip()))
totals = {name: 0.0 for name, _ in CATEGORIES}
for share, dso, sym in rows:
    for name, test in CATEGORIES:
        if test(dso, sym):
            totals[name] += share
            break
print("category                                          share")
for name, _ in CATEGORIES:
    print(f"{name:<48} {totals[name]:5.1f} %")
print()
print("top symbols")
for share, dso, sym in sorted(rows, reverse=True)[:25]:
    print(f"{share:5.1f} %  {dso[:28]:<28}  {sym[:110]}")
