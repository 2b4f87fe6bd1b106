#!/usr/bin/env bash
# The pgcrypto peer (issue 16): PostgreSQL 15 + pgcrypto doing anonreg's check-up and audited
# status read (bench/pgcrypto-peer/*.sql), driven by pgbench over the Unix socket of a throwaway
# cluster with fsync, synchronous_commit and full_page_writes on. `make bench-pgcrypto`; `make
# bench` runs it after `anonreg-bench run` and puts both in one table (bench/compare.py).
#
#   bench/pgcrypto-peer.sh [--seconds S] [--subjects N] [--clients "8 64"] [--results DIR]
#
# Environment defaults: PEER_SECONDS (10), PEER_SUBJECTS (10000), PEER_CLIENTS ("8 64"),
# PEER_RESULTS (bench/results). Writes DIR/<UTC timestamp>-pgcrypto.json and .md.
#
# Without PostgreSQL 15, pgcrypto, pgbench or python3 it prints why and exits 0: the peer is
# optional, and `make bench` must still run anonreg's own figures.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds="${PEER_SECONDS:-10}"
subjects="${PEER_SUBJECTS:-10000}"
clients="${PEER_CLIENTS:-8 64}"
results="${PEER_RESULTS:-$here/results}"
while (($#)); do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --subjects) subjects="$2"; shift 2 ;;
        --clients) clients="$2"; shift 2 ;;
        --results) results="$2"; shift 2 ;;
        *) echo "usage: $0 [--seconds S] [--subjects N] [--clients \"8 64\"] [--results DIR]" >&2; exit 2 ;;
    esac
done

# PEER_PGBIN: another PostgreSQL 15 build (default: Debian's).
pgbin="${PEER_PGBIN:-/usr/lib/postgresql/15/bin}"
skip() {
    echo "bench-pgcrypto: skipped, $1 (Debian: apt-get install postgresql-15; pgcrypto and pgbench come with it)"
    exit 0
}
for tool in initdb pg_ctl postgres psql pgbench; do
    [ -x "$pgbin/$tool" ] || skip "$pgbin/$tool is missing"
done
[ -e /usr/share/postgresql/15/extension/pgcrypto.control ] || skip "the pgcrypto extension is missing"
command -v python3 >/dev/null || skip "python3 is missing (it summarises pgbench's logs)"

cluster_label="bench/pgcrypto-peer.sh"
cluster_socket_mode=0700
# shellcheck source=bench/postgres-cluster.sh
. "$here/postgres-cluster.sh"
cp "$here"/pgcrypto-peer/*.sql "$dir/"
[ "$(id -u)" -eq 0 ] && chown -R "$uid:$gid" "$dir"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
echo "pgcrypto peer: PostgreSQL $("$pgbin/postgres" --version | sed 's/^postgres (PostgreSQL) //'), $subjects subjects, clients $clients, $seconds s per phase, load average $load_before, scratch $dir"

psql -d postgres -c "CREATE DATABASE peer"
started=$(date +%s%N)
psql -d peer -v subjects="$subjects" -f "$dir/schema.sql"
echo "loaded $subjects subjects with 3 check-ups each in $((($(date +%s%N) - started) / 1000000)) ms"
# The keys and the HMAC lookup work as the scripts use them: subject 1 found, its check-up decrypted.
probe="$(psql -d peer -A -t -c "SELECT pgp_sym_decrypt(c.payload, 'anonreg-peer-bench-aes-key')::json->>'outcome'
    FROM subject s JOIN checkup c ON c.subject_id = s.id
    WHERE s.code_hmac = hmac('case-1'::text, 'anonreg-peer-bench-hmac-key'::text, 'sha256') LIMIT 1")"
[ "$probe" = remission ] || { echo "bench-pgcrypto: the loaded data does not decrypt as expected ($probe)" >&2; exit 1; }
settings="$(psql -d peer -A -t -c "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
    WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method', 'shared_buffers', 'listen_addresses')")"
echo "settings: $settings"

# One phase per operation and client count, as `anonreg-bench run` orders them: each pgbench
# writes per-transaction logs (-l) that summary.py turns into p50/p99.
: >"$dir/phases"
for op in checkup status; do
    for c in $clients; do
        threads=$((c < 2 ? c : 2))
        phase="$dir/$op-$c"
        as_pg mkdir "$phase"
        rc=0
        # WAL flushes (fdatasync) during the phase: evidence that commits reach the disk, and
        # how many commits each flush carries (PostgreSQL's own group commit).
        psql -d peer -A -t -c "SELECT wal_sync FROM pg_stat_wal" >"$phase/wal-syncs-before"
        (cd "$phase" && as_pg "$pgbin/pgbench" -n -M prepared -D subjects="$subjects" -c "$c" -j "$threads" -T "$seconds" \
            -l --log-prefix="$phase/tx" -f "$dir/$op.sql" -h "$dir" -p 5432 -U "$runas" peer >"$phase/out" 2>"$phase/err") || rc=$?
        psql -d peer -A -t -c "SELECT wal_sync FROM pg_stat_wal" >"$phase/wal-syncs-after"
        echo "$op $c $threads $rc $phase" >>"$dir/phases"
        python3 "$here/pgcrypto-peer/summary.py" line "$op" "$c" "$threads" "$rc" "$phase"
    done
done

checkups="$(psql -d peer -A -t -c "SELECT count(*) FROM checkup")"
audits="$(psql -d peer -A -t -c "SELECT count(*) FROM audit")"
db_bytes="$(psql -d peer -A -t -c "SELECT pg_database_size('peer')")"
echo "at the end: $checkups check-up rows ($((3 * subjects)) loaded), $audits audit rows, database $((db_bytes / 1048576)) MiB"
mkdir -p "$results"
python3 "$here/pgcrypto-peer/summary.py" report "$dir/phases" "$results/$stamp-pgcrypto" \
    --seconds "$seconds" --subjects "$subjects" --settings "$settings" --load-before "$load_before" \
    --postgres "$("$pgbin/postgres" --version)" --checkups "$checkups" --audits "$audits" --database-bytes "$db_bytes"
