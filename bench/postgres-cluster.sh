# Sourced (bash) by the benchmarks that need a throwaway PostgreSQL 15 cluster:
# bench/postgres-nodes.sh, bench/pgcrypto-peer.sh and bench/profile.sh (PROFILE_BACKEND=postgresql).
#
# Starts a cluster durable as anonreg requires (fsync, synchronous_commit and full_page_writes
# on), reachable only through a Unix socket in a fresh directory, and tears it down when the
# script exits. PostgreSQL refuses to run as root: as root, every PostgreSQL program runs as the
# unprivileged user the Debian package creates, as Tests/AnonregTestSupport/ThrowawayPostgres.swift
# does; otherwise as the caller.
#
# Before sourcing: pgbin (the binaries), cluster_label (a comment in postgresql.conf).
# Optional: cluster_socket_mode (unix_socket_permissions, default 0777: the daemon under test may
# run as another user), cluster_extra_cleanup (paths removed with the cluster).
# Defines: runas, dir (the cluster's directory, also its socket directory), as_pg CMD…,
# psql ARGS… (as the superuser, port 5432), cluster_password_role ROLE FILE (a login role whose
# password is written to FILE, mode 0600).

if [ "$(id -u)" -eq 0 ]; then
    runas=postgres
    getent passwd "$runas" >/dev/null || runas=nobody
    uid="$(id -u "$runas")"
    gid="$(id -g "$runas")"
else
    runas="$(id -un)"
fi
dir="$(mktemp -d /tmp/anonreg-pgcluster.XXXXXX)"
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid="$uid" --regid="$gid" --clear-groups -- env -i PATH=/usr/bin:/bin LC_ALL=C HOME="$dir" "$@"
    else
        env LC_ALL=C HOME="$dir" "$@"
    fi
}
# Always torn down, also when a step fails or the run is interrupted.
cluster_cleanup() {
    if [ -e "$dir/data/postmaster.pid" ]; then
        as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 -s stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir" ${cluster_extra_cleanup:-}
}
trap cluster_cleanup EXIT
trap 'exit 130' INT TERM
[ "$(id -u)" -eq 0 ] && chown "$uid:$gid" "$dir"
chmod 0711 "$dir"

as_pg "$pgbin/initdb" -D "$dir/data" -U "$runas" --auth-local=peer --auth-host=reject --no-locale --encoding=UTF8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }
as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF

# $cluster_label: durable as anonreg requires, Unix socket only.
listen_addresses = ''
unix_socket_directories = '$dir'
unix_socket_permissions = ${cluster_socket_mode:-0777}
port = 5432
fsync = on
synchronous_commit = on
full_page_writes = on
shared_buffers = 128MB
max_connections = 100
logging_collector = off
CONF
as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s start || { cat "$dir/server.log"; exit 1; }
psql() { as_pg "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U "$runas" "$@"; }

cluster_password_role() {
    local role="$1" file="$2" password
    password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    psql -d postgres -c "CREATE ROLE $role LOGIN PASSWORD '$password'"
    (umask 077 && printf '%s\n' "$password" >"$file")
    chmod 0600 "$file"
    # The role logs in with its password (scram-sha-256), the superuser still by peer: the
    # line goes before initdb's, since the first matching line decides.
    as_pg sh -c "printf 'local all $role scram-sha-256\n' | cat - '$dir/data/pg_hba.conf' > '$dir/data/pg_hba.new' && mv '$dir/data/pg_hba.new' '$dir/data/pg_hba.conf'"
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -s reload
}
