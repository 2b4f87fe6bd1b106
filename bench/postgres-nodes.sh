#!/usr/bin/env bash
# anonreg on SQLite, on PostgreSQL with one node and with two nodes, and the pgcrypto peer, in
# one session and one table (issue 17; docs/PERFORMANCE.md). `make bench-postgres`.
#
#   bench/postgres-nodes.sh [--seconds S] [--bin-dir DIR] [--results DIR]
#
# Starts a throwaway PostgreSQL 15 cluster of its own (Unix socket only; fsync,
# synchronous_commit and full_page_writes on; a role that logs in with a password), runs
# `anonreg-bench run --ops checkup status --connections 8 64` three times (SQLite; PostgreSQL,
# one node; PostgreSQL, two nodes sharing the connections), then bench/pgcrypto-peer.sh, and
# puts them in one table (bench/nodes-table.py). Without PostgreSQL 15 it says so and exits 0.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds="${NODES_SECONDS:-10}"
bindir="${NODES_BIN_DIR:-$here/../.build/release}"
results="${NODES_RESULTS:-$here/results}"
while (($#)); do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --bin-dir) bindir="$2"; shift 2 ;;
        --results) results="$2"; shift 2 ;;
        *) echo "usage: $0 [--seconds S] [--bin-dir DIR] [--results DIR]" >&2; exit 2 ;;
    esac
done
pgbin=/usr/lib/postgresql/15/bin
for tool in initdb pg_ctl postgres psql; do
    [ -x "$pgbin/$tool" ] || { echo "bench-postgres: skipped, $pgbin/$tool is missing (apt-get install postgresql-15)"; exit 0; }
done
[ -x "$bindir/anonreg-bench" ] || { echo "bench-postgres: $bindir/anonreg-bench is missing (swift build -c release)" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    runas=postgres
    getent passwd "$runas" >/dev/null || runas=nobody
    uid="$(id -u "$runas")"
    gid="$(id -g "$runas")"
else
    runas="$(id -un)"
fi
dir="$(mktemp -d /tmp/anonreg-pgnodes.XXXXXX)"
client="$(mktemp -d /tmp/anonreg-pgnodes-client.XXXXXX)"
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid="$uid" --regid="$gid" --clear-groups -- env -i PATH=/usr/bin:/bin LC_ALL=C HOME="$dir" "$@"
    else
        env LC_ALL=C HOME="$dir" "$@"
    fi
}
cleanup() {
    if [ -e "$dir/data/postmaster.pid" ]; then
        as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 -s stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir" "$client"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ "$(id -u)" -eq 0 ] && chown "$uid:$gid" "$dir"
chmod 0711 "$dir"

as_pg "$pgbin/initdb" -D "$dir/data" -U "$runas" --auth-local=peer --auth-host=reject --no-locale --encoding=UTF8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }
as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF

# bench/postgres-nodes.sh: durable as anonreg requires, Unix socket only.
listen_addresses = ''
unix_socket_directories = '$dir'
unix_socket_permissions = 0777
port = 5432
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 128MB
max_connections = 100
logging_collector = off
CONF
# The daemon's role logs in with its password (scram-sha-256); the superuser by peer.
as_pg sh -c "printf 'local all anonreg scram-sha-256\n' | cat - '$dir/data/pg_hba.conf' > '$dir/data/pg_hba.new' && mv '$dir/data/pg_hba.new' '$dir/data/pg_hba.conf'"
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s start || { cat "$dir/server.log"; exit 1; }
password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
psql() { as_pg "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U "$runas" "$@"; }
psql -d postgres -c "CREATE ROLE anonreg LOGIN PASSWORD '$password'"
psql -d postgres -c "CREATE DATABASE bench1 OWNER anonreg"
psql -d postgres -c "CREATE DATABASE bench2 OWNER anonreg"
chmod 0700 "$client"
printf '%s\n' "$password" >"$client/password"
chmod 0600 "$client/password"
echo "PostgreSQL $("$pgbin/postgres" --version | sed 's/^postgres (PostgreSQL) //') at $dir; load average $(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$results"
common=(--ops checkup status --connections 8 64 --seconds "$seconds" --no-limits --results "$results")
pg=(--postgres-socket-dir "$dir" --postgres-password-file "$client/password")
"$bindir/anonreg-bench" run "${common[@]}"
"$bindir/anonreg-bench" run "${common[@]}" "${pg[@]}" --postgres-database bench1
"$bindir/anonreg-bench" run "${common[@]}" "${pg[@]}" --postgres-database bench2 --nodes 2
PEER_SECONDS="$seconds" PEER_RESULTS="$results" "$here/pgcrypto-peer.sh"
python3 "$here/nodes-table.py" --results "$results"
