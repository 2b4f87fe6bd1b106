#!/bin/sh
# Profile the daemon on one request path (issue 16, docs/PERFORMANCE.md §Profiling findings).
#
# Usage: bench/profile.sh OP [SECONDS] [BIN_DIR]
#   OP       status | checkup | due   (an `anonreg-bench run` operation)
#   SECONDS  length of the load phase (default 30; perf samples its middle)
#   BIN_DIR  release binaries (default .build/release)
#
# Runs `anonreg-bench run --ops OP --connections 8` against a fresh daemon, samples that
# anonregd with `perf record -e cpu-clock -g` (software clock: this VM has no hardware
# counters), and prints:
#   - where the daemon's CPU went, by category: libsodium (cryptography), SQLite, the kernel
#     (fsync, sockets, scheduling), JSON (Foundation's coders), the Swift runtime (allocation,
#     reference counting, metadata, executors), NIO/Hummingbird, anonreg's own code;
#   - the top symbols.
# Writes bench/results/<UTC timestamp>-profile-OP.txt. Needs perf (Debian: linux-perf) and root
# or kernel.perf_event_paranoid <= 1.
set -eu
op=${1:?usage: bench/profile.sh status|checkup|due [SECONDS] [BIN_DIR]}
seconds=${2:-30}
bin=${3:-$(pwd)/.build/release}
command -v perf >/dev/null || { echo "profile: perf is not installed (apt install linux-perf); skipped"; exit 0; }
out_dir=$(pwd)/bench/results
mkdir -p "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d)
trap 'kill "$bench" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/anonreg-bench" run --ops "$op" --connections 8 --seconds "$seconds" --no-limits --no-half-peak \
    >"$work/bench.out" 2>&1 &
bench=$!
# The daemon is a child of the bench. After it starts, the bench enrols its case pools (a few
# seconds), then loads it for SECONDS: perf samples a third of that, from about a quarter in.
pid=""
for _ in $(seq 1 600); do
    pid=$(pgrep -n -P "$bench" anonregd || true)
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { cat "$work/bench.out"; echo "profile: no anonregd appeared"; exit 1; }
sleep $((5 + seconds / 4))
perf record -F 999 -e cpu-clock -g -p "$pid" -o "$work/perf.data" -- sleep $((seconds / 3)) >/dev/null 2>&1
wait "$bench" || true
report=$out_dir/$stamp-profile-$op.txt
{
    echo "# anonregd profile, $op at 8 connections, $(date -u +%FT%TZ), $bin"
    grep -E "$op" "$work/bench.out" | head -5 || true
    echo
    perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null \
        | python3 "$(dirname "$0")/profile-categories.py"
} | tee "$report"
echo "wrote $report"
