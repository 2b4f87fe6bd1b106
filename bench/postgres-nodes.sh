#!/usr/bin/env bash
# anonreg on SQLite, on PostgreSQL with one node and with two nodes, and the pgcrypto peer, in
# one session and one table (issue 17; docs/PERFORMANCE.md). `make bench-postgres`.
#
#   bench/postgres-nodes.sh [--seconds S] [--bin-dir DIR] [--results DIR] [--ops "OP ..."]
#
# Starts a throwaway PostgreSQL 15 cluster of its own (Unix socket only; fsync,
# synchronous_commit and full_page_writes on; a role that logs in with a password), runs
# `anonreg-bench run --ops checkup status --connections 8 64` (or the operations --ops names,
# `anonreg-bench run --help` lists them) three times (SQLite; PostgreSQL,
# one node; PostgreSQL, two nodes sharing the connections), then bench/pgcrypto-peer.sh, and
# puts them in one table (bench/nodes-table.py). Without PostgreSQL 15 it says so and exits 0.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds="${NODES_SECONDS:-10}"
bindir="${NODES_BIN_DIR:-$here/../.build/release}"
results="${NODES_RESULTS:-$here/results}"
ops="${NODES_OPS:-checkup status}"
while (($#)); do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --bin-dir) bindir="$2"; shift 2 ;;
        --results) results="$2"; shift 2 ;;
        --ops) ops="$2"; shift 2 ;;
        *) echo "usage: $0 [--seconds S] [--bin-dir DIR] [--results DIR] [--ops \"OP ...\"]" >&2; exit 2 ;;
    esac
done
pgbin=/usr/lib/postgresql/15/bin
for tool in initdb pg_ctl postgres psql; do
    [ -x "$pgbin/$tool" ] || { echo "bench-postgres: skipped, $pgbin/$tool is missing (apt-get install postgresql-15)"; exit 0; }
done
[ -x "$bindir/anonreg-bench" ] || { echo "bench-postgres: $bindir/anonreg-bench is missing (swift build -c release)" >&2; exit 1; }

client="$(mktemp -d /tmp/anonreg-pgnodes-client.XXXXXX)"
chmod 0700 "$client"
cluster_label="bench/postgres-nodes.sh"
cluster_extra_cleanup="$client"
# shellcheck source=bench/postgres-cluster.sh
. "$here/postgres-cluster.sh"
cluster_password_role anonreg "$client/password"
psql -d postgres -c "CREATE DATABASE bench1 OWNER anonreg"
psql -d postgres -c "CREATE DATABASE bench2 OWNER anonreg"
echo "PostgreSQL $("$pgbin/postgres" --version | sed 's/^postgres (PostgreSQL) //') at $dir; load average $(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$results"
read -r -a op_list <<< "$ops"
common=(--ops "${op_list[@]}" --connections 8 64 --seconds "$seconds" --no-limits --results "$results")
pg=(--postgres-socket-dir "$dir" --postgres-password-file "$client/password")
"$bindir/anonreg-bench" run "${common[@]}"
"$bindir/anonreg-bench" run "${common[@]}" "${pg[@]}" --postgres-database bench1
"$bindir/anonreg-bench" run "${common[@]}" "${pg[@]}" --postgres-database bench2 --nodes 2
PEER_SECONDS="$seconds" PEER_RESULTS="$results" "$here/pgcrypto-peer.sh"
python3 "$here/nodes-table.py" --results "$results"
