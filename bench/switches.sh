#!/bin/sh
# Thread hand-offs and CPU per request of one request path (issue 16; docs/PERFORMANCE.md
# §Executor hops).
#
# Usage: bench/switches.sh OP [BIN_DIR] [SECONDS]
#   OP       checkup | status | …  (an `anonreg-bench run` operation)
#   BIN_DIR  release binaries (default .build/release)
#   SECONDS  length of the load phase (default 12; perf counts 4 s from its middle)
#
# Runs `anonreg-bench run --ops OP --connections 8` against a fresh daemon on SQLite and counts,
# with `perf stat`, the daemon's context switches and CPU time over 4 s of the phase. Prints the
# phase's rate, context switches per request and CPU milliseconds per request: every hand-off
# of a request between threads (an event loop, Swift's cooperative pool, GRDB's queues) is at
# least one switch, and unlike a rate the two figures hardly depend on how busy the machine is.
# Needs perf (Debian: linux-perf) and root or kernel.perf_event_paranoid <= 1.
set -eu
op=${1:?usage: bench/switches.sh OP [BIN_DIR] [SECONDS]}
bin=${2:-$(pwd)/.build/release}
seconds=${3:-12}
command -v perf >/dev/null || { echo "switches: perf is not installed (apt install linux-perf); skipped"; exit 0; }
[ "$seconds" -ge 8 ] || { echo "switches: SECONDS must be 8 or more" >&2; exit 2; }
work=$(mktemp -d)
bench=""
trap 'kill "$bench" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/anonreg-bench" run --bin-dir "$bin" --results "$work" --ops "$op" --connections 8 --seconds "$seconds" \
    --no-limits --no-half-peak >"$work/bench.out" 2>&1 &
bench=$!
# shellcheck source=bench/bench-daemon.sh
. "$(dirname "$0")/bench-daemon.sh"
pid=$(bench_daemon_pid "$bench" "$work/bench.out" switches)
# The bench enrols its case pools first (a few seconds), then loads for SECONDS.
sleep $((5 + seconds / 3))
perf stat -e context-switches,cpu-clock -p "$pid" -x, -o "$work/stat" -- sleep 4 >/dev/null 2>&1
wait "$bench" || true
rate=$(grep -E "^\| $op \| socket \| 8 " "$work"/*.md | awk -F'|' '{ gsub(/ /, "", $5); print $5 }')
switches=$(grep context-switches "$work/stat" | cut -d, -f1)
cpu=$(grep cpu-clock "$work/stat" | cut -d, -f1)
[ -n "$rate" ] && [ -n "$switches" ] && [ -n "$cpu" ] || { cat "$work/bench.out"; echo "switches: no figures"; exit 1; }
awk -v op="$op" -v r="$rate" -v s="$switches" -v c="$cpu" -v bin="$bin" 'BEGIN {
    printf "%s at 8 connections (%s): %.0f requests/s, %.1f context switches and %.3f ms of CPU per request\n", op, bin, r, s / (4 * r), c / (4 * r)
}'
