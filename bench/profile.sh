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
#
# PROFILE_BACKEND=postgresql runs the daemon on a throwaway PostgreSQL 15 cluster
# (bench/postgres-cluster.sh) instead of SQLite, and also reports how the CPU of the sampled
# window divides between anonregd and the cluster's server processes
# (bench/results/<stamp>-profile-OP-postgresql.txt).
set -eu
op=${1:?usage: bench/profile.sh status|checkup|due [SECONDS] [BIN_DIR]}
seconds=${2:-30}
bin=${3:-$(pwd)/.build/release}
command -v perf >/dev/null || { echo "profile: perf is not installed (apt install linux-perf); skipped"; exit 0; }
out_dir=$(pwd)/bench/results
mkdir -p "$out_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
work=$(mktemp -d)
bench=""
trap 'kill "$bench" 2>/dev/null || true; rm -rf "$work"' EXIT
backend=${PROFILE_BACKEND:-sqlite}
suffix=""
if [ "$backend" = postgresql ]; then
    pgbin=/usr/lib/postgresql/15/bin
    [ -x "$pgbin/initdb" ] || { echo "profile: $pgbin/initdb is missing (apt install postgresql-15); skipped"; exit 0; }
    cluster_label="bench/profile.sh"
    cluster_extra_cleanup="$work"
    # shellcheck source=bench/postgres-cluster.sh
    . "$(dirname "$0")/postgres-cluster.sh"
    trap 'kill "$bench" 2>/dev/null || true; cluster_cleanup' EXIT
    cluster_password_role anonreg "$work/password"
    psql -d postgres -c "CREATE DATABASE profile OWNER anonreg"
    set -- --postgres-socket-dir "$dir" --postgres-password-file "$work/password" --postgres-database profile
    suffix="-postgresql"
else
    set --
fi
"$bin/anonreg-bench" run --ops "$op" --connections 8 --seconds "$seconds" --no-limits --no-half-peak "$@" \
    >"$work/bench.out" 2>&1 &
bench=$!
# The daemon is a child of the bench. After it starts, the bench enrols its case pools (a few
# seconds), then loads it for SECONDS: perf samples a third of that, from about a quarter in.
# shellcheck source=bench/bench-daemon.sh
. "$(dirname "$0")/bench-daemon.sh"
pid=$(bench_daemon_pid "$bench" "$work/bench.out" profile)
sleep $((5 + seconds / 4))
# CPU ticks (user + system) of a process and of the cluster's server processes.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
server_ticks() {
    [ "$backend" = postgresql ] || { echo 0; return; }
    postmaster=$(head -n 1 "$dir/data/postmaster.pid")
    total=$(ticks "$postmaster")
    for child in $(pgrep -P "$postmaster"); do total=$((total + $(ticks "$child"))); done
    echo "$total"
}
daemon_before=$(ticks "$pid")
server_before=$(server_ticks)
perf record -F 999 -e cpu-clock -g -p "$pid" -o "$work/perf.data" -- sleep $((seconds / 3)) >/dev/null 2>&1
daemon_ticks=$(($(ticks "$pid") - daemon_before))
server_ticks=$(($(server_ticks) - server_before))
wait "$bench" || true
report=$out_dir/$stamp-profile-$op$suffix.txt
{
    echo "# anonregd profile, $op at 8 connections, $backend, $(date -u +%FT%TZ), $bin"
    grep -E "$op" "$work/bench.out" | head -5 || true
    if [ "$backend" = postgresql ]; then
        hz=$(getconf CLK_TCK)
        echo "CPU in the sampled $((seconds / 3)) s: anonregd $((daemon_ticks * 100 / hz / 100)).$((daemon_ticks * 100 / hz % 100)) s, PostgreSQL server processes $((server_ticks * 100 / hz / 100)).$((server_ticks * 100 / hz % 100)) s"
    fi
    echo
    perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null \
        | python3 "$(dirname "$0")/profile-categories.py"
} | tee "$report"
echo "wrote $report"
