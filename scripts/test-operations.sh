#!/usr/bin/env bash
# The walk of docs/OPERATIONS.md on an installed layout (part of `make test`; issue 22): install,
# the service user's state directory, init as root, a configuration check, the daemon under
# socket activation, a first clinic with a reload, a monitor scraping /metrics, KEK rotation
# with the rotate service's own steps, a database backup and a keyring backup taken by root,
# the backup timer's service run once as systemd runs it and a trial restore of what it wrote,
# losing the state, and restoring both as root from the newest pair.
#
# Numeric ids stand in for the sysusers accounts (the binaries run on this host, whose user
# database does not hold the install root's): service user 61021 (`daemon.user = "61021"`),
# socket group 61022, clinic system 61023 (primary group 61022), monitor 61024.
# Needs root. Prints "operations: N passed, M failed".
set -u
cd "$(dirname "$0")/.."
BIN=${BINARIES:-$PWD/.build/debug}
passed=0
failed=0
check() { # check NAME COMMAND...
    local name=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok     $name"
    else
        failed=$((failed + 1))
        echo "FAILED $name"
    fi
}

if [ "$(id -u)" -ne 0 ]; then
    echo "operations: needs root (it runs the daemon and the clinic as other uids)" >&2
    exit 1
fi

work=$(mktemp -d /tmp/anonreg-operations-XXXXXX)
chmod 0755 "$work"
daemon_pid=""
stop_daemon() {
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
        local status=$?
        daemon_pid=""
        return $status
    fi
}
cleanup() {
    stop_daemon
    rm -rf "$work"
}
trap cleanup EXIT

SERVICE=61021 SOCKGROUP=61022 CLINIC=61023 MONITOR=61024
# The CLI sends nothing to a socket in a directory an untrusted uid owns (SocketTrust). The shipped
# units run the daemon as the user `anonreg`, which it trusts by name; this layout's service user
# is a bare uid, named the documented way.
export ANONREG_DAEMON_USER=$SERVICE
root=$work/root
state=$work/var/lib/anonreg
run=$work/run/anonreg
safe=$work/safe
socket=$run/anonreg.sock

# 1. Install, as the guide says (into a DESTDIR root), and the installed configuration, pointed at
#    this layout: the same template `make install` writes, with the test's paths and service uid.
make --no-print-directory install DESTDIR="$root" BINARIES="$BIN" > "$work/install.log" 2>&1
anonreg=$root/usr/local/bin/anonreg
anonregd=$root/usr/local/bin/anonregd
check "make install" test -x "$anonreg" -a -x "$anonregd" -a -f "$root/etc/anonreg/anonreg.toml"
check "the installed configuration names the service user" grep -q '^user = "anonreg"$' "$root/etc/anonreg/anonreg.toml"
config=$root/etc/anonreg/anonreg.toml
"$anonreg" config-template --state-dir "$state" --socket "$socket" --user "$SERVICE" > "$config"
export ANONREG_CONFIG=$config

# 2. What systemd-tmpfiles makes (systemd/anonreg.tmpfiles): the service user's directories.
mkdir -p "$work/var/lib" "$work/run" "$safe"
chmod 0700 "$safe"
install -d -m 0750 -o "$SERVICE" -g "$SERVICE" "$state"
install -d -m 0700 -o "$SERVICE" -g "$SERVICE" "$state/keys"
install -d -m 0750 -o "$SERVICE" -g "$SOCKGROUP" "$run"

# 3. init as root: it works as the service user.
"$anonreg" init --state-dir "$state" --keys-only > "$work/init.out" 2> "$work/init.err"
check "init --keys-only as root says it works as the owner" grep -q "^anonreg: working as uid $SERVICE, the owner of $state$" "$work/init.err"
check "the keyring and database are the service user's" bash -c "
    for f in '$state/keys/keyring.json' '$state/keys/kek-1.key' '$state/registry.sqlite'; do
        [ \"\$(stat -c %u \"\$f\")\" = $SERVICE ] || { echo \"\$f is not the service user's\"; exit 1; }
    done"
check "anonregd --check-config as root" "$anonregd" --check-config --config "$config"

# 4. The daemon as the socket unit runs it.
start_daemon() {
    rm -f "$socket"  # RemoveOnStop=yes in anonregd.socket
    setpriv --reuid="$SERVICE" --regid="$SERVICE" --clear-groups systemd-socket-activate -l "$socket" \
        "$anonregd" --config "$config" >> "$work/daemon.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 1 100); do [ -S "$socket" ] && break; sleep 0.1; done
    chgrp "$SOCKGROUP" "$socket" && chmod 0660 "$socket"
    for _ in $(seq 1 100); do "$anonreg" health --socket "$socket" > /dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
check "the daemon starts and answers root (the admin)" start_daemon
check "anonregd --version names the commit" bash -c "'$anonregd' --version | grep -Eq '^[0-9.]+ \\(commit [0-9a-f]{40}'"

# 5. A first clinic, applied with a reload (ExecReload: check, then SIGHUP).
"$anonreg" clinics add north --uid "$CLINIC" --config "$config" > /dev/null
check "clinics add --gid 0 is refused" bash -c "! '$anonreg' clinics add rootgroup --gid 0 --config '$config' 2>/dev/null"
check "clinics add of the service user is refused" bash -c "! '$anonreg' clinics add self --uid $SERVICE --config '$config' 2>/dev/null"
sed -i "s/^monitor_uids = \[\]/monitor_uids = [$MONITOR]/" "$config"
check "the edited configuration checks" "$anonregd" --check-config --config "$config"
kill -HUP "$daemon_pid"
for _ in $(seq 1 100); do grep -q "configuration reloaded" "$work/daemon.log" && break; sleep 0.1; done
check "the reload logs the clinic and the monitor it added" bash -c "
    grep -q 'configuration reload: clinic north added (uids $CLINIC)' '$work/daemon.log' &&
    grep -q 'configuration reload: monitor added: uid $MONITOR' '$work/daemon.log'"
as_clinic() { setpriv --reuid="$CLINIC" --regid="$SOCKGROUP" --clear-groups env ANONREG_SOCKET="$socket" "$anonreg" "$@"; }
kept=$(as_clinic enrol --category dependence --consent-form F-1 --enrolled-on 2026-01-10 --json 2> "$work/enrol.err")
kept_case=$(printf '%s' "$kept" | python3 -c 'import json,sys; print(json.load(sys.stdin)["case"])' 2>/dev/null)
check "the clinic enrols through the CLI" test -n "$kept_case"
check "the clinic records a check-up" bash -c "setpriv --reuid=$CLINIC --regid=$SOCKGROUP --clear-groups env ANONREG_SOCKET='$socket' '$anonreg' checkup '$kept_case' --on 2026-02-01 --outcome remission > /dev/null"

# 6. The monitor reads the metrics and nothing else.
as_monitor() { setpriv --reuid="$MONITOR" --regid="$SOCKGROUP" --clear-groups curl -s -w '\n%{http_code}' --unix-socket "$socket" "$@"; }
as_monitor http://anonreg/metrics > "$work/monitor.out"
check "the monitor scrapes /metrics" test "$(tail -1 "$work/monitor.out")" = "200"
check "the metrics hold the sweep and KEK gauges" bash -c "
    grep -q '^anonreg_sweep_last_success_timestamp_seconds ' '$work/monitor.out' &&
    grep -q '^anonreg_kek_primary_created_timestamp_seconds ' '$work/monitor.out'"
check "the monitor is refused a case" test "$(as_monitor "http://anonreg/v1/cases/$kept_case" | tail -1)" = "403"

# 7. Rotation: a new primary with rewrap, then the rotate service's own steps, as it runs them.
check "keys rotate --rewrap" bash -c "ANONREG_SOCKET='$socket' '$anonreg' keys rotate --rewrap --json > '$work/rotate.out'"
rotate_ok=1
while IFS= read -r line; do
    command=${line#ExecStart=}
    command=${command//\/usr\/local\/bin\/anonreg/$anonreg}
    ANONREG_SOCKET=$socket bash -c "$command" >> "$work/rotate-service.out" 2>&1 || rotate_ok=0
done < <(grep '^ExecStart=' "$root/usr/local/lib/systemd/system/anonreg-rotate.service")
check "the rotate service's steps run (retire version 1, unused)" test "$rotate_ok" = 1
check "keys status: 2 is primary, 1 retired" bash -c "ANONREG_SOCKET='$socket' '$anonreg' keys status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
status = {v[\"version\"]: v[\"status\"] for v in s[\"versions\"]}
sys.exit(0 if s[\"primary\"] == 2 and status.get(1) == \"retired\" else 1)'"

# 8. Backups as root, the installed admin: a subject erased after the database backup, then the
#    keyring backup (which carries the erasure ledger).
gone=$(as_clinic enrol --category dependence --consent-form F-2 --enrolled-on 2026-01-10 --json 2>/dev/null)
gone_case=$(printf '%s' "$gone" | python3 -c 'import json,sys; print(json.load(sys.stdin)["case"])' 2>/dev/null)
ANONREG_SOCKET=$socket "$anonreg" backup create "$safe/registry.anrgbak" > "$work/backup.out" 2>&1
check "backup create writes root's 0600 file" test "$(stat -c '%a %u' "$safe/registry.anrgbak" 2>/dev/null)" = "600 0"
check "the erased subject is withdrawn" bash -c "setpriv --reuid=$CLINIC --regid=$SOCKGROUP --clear-groups env ANONREG_SOCKET='$socket' '$anonreg' withdraw --case '$gone_case' > /dev/null"
printf 'a keyring backup passphrase\n' > "$safe/pass" && chmod 0600 "$safe/pass"
"$anonreg" keys backup "$safe/keys.anrgkbk" --state-dir "$state" --passphrase-file "$safe/pass" --kdf-strength interactive > /dev/null 2> "$work/keys-backup.err"
check "keys backup as root, into root's directory" test "$(stat -c '%u' "$safe/keys.anrgkbk" 2>/dev/null)" = "0"
check "backup verify as root checks the keyring" "$anonreg" backup verify "$safe/registry.anrgbak" --state-dir "$state"

# 8b. The backup timer's service, run once by hand as systemd runs it (anonreg-backup.service):
#     its ExecStart line, as root with only the unit's CapabilityBoundingSet (CAP_SETUID and
#     CAP_SETGID: no CAP_DAC_OVERRIDE, so root can neither read the keys nor write the backup
#     directory itself), no new privileges, the socket group (SupplementaryGroups), UMask=0077,
#     the credential as systemd hands it over (root's, 0400, in $CREDENTIALS_DIRECTORY), and the
#     backup directory as the tmpfiles entry makes it.
unit=$root/usr/local/lib/systemd/system/anonreg-backup.service
backups=$work/var/backups/anonreg
tmpfiles_backups=$(awk '$2 == "/var/backups/anonreg" {print $1, $3, $4, $5}' "$root/usr/local/lib/tmpfiles.d/anonreg.conf")
check "tmpfiles has the backup directory, 0700 anonreg:anonreg" test "$tmpfiles_backups" = "d 0700 anonreg anonreg"
mkdir -p "$work/var/backups"
install -d -m 0700 -o "$SERVICE" -g "$SERVICE" "$backups"
creds=$work/credentials
install -d -m 0700 "$creds"
printf 'the scheduled backup passphrase\n' > "$creds/anonreg-backup-passphrase"
chmod 0400 "$creds/anonreg-backup-passphrase"
bounding=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ \+/,+/g')
exec_start=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$unit" | sed 's/^ExecStart=//; s/\\$//' | tr '\n' ' ')
exec_start=${exec_start//\/usr\/local\/bin\/anonreg/$anonreg}
exec_start=${exec_start//\/var\/lib\/anonreg/$state}
exec_start=${exec_start//\/var\/backups\/anonreg/$backups}
echo "       backup unit: bounding set +$bounding; $exec_start"
check "the backup unit keeps only CAP_SETUID and CAP_SETGID" test "$bounding" = "setuid,+setgid"
run_backup_unit() { # run_backup_unit BOUNDING-SET
    setpriv --inh-caps=-all --bounding-set="-all${1:+,+$1}" --no-new-privs --groups="$SOCKGROUP" -- \
        env CREDENTIALS_DIRECTORY="$creds" ANONREG_SOCKET="$socket" bash -c "umask 0077; exec $exec_start"
}
run_backup_unit "$bounding" > "$work/backup-unit.out" 2> "$work/backup-unit.err"
check "the backup service runs (exit 0)" test $? = 0
check "it sent the request as root, then worked as the service user" grep -q "^anonreg: working as uid $SERVICE, the owner of $state$" "$work/backup-unit.err"
newest_db=$(ls "$backups"/registry-*.anrgbak 2>/dev/null | tail -1)
newest_keys=$(ls "$backups"/keys-*.anrgkbk 2>/dev/null | tail -1)
check "it wrote a database backup and a keyring backup" test -n "$newest_db" -a -n "$newest_keys"
check "every backup file is the service user's, mode 0600" bash -c "
    for f in '$backups'/*; do [ \"\$(stat -c '%a %u' \"\$f\")\" = '600 $SERVICE' ] || { echo \"\$f\"; exit 1; }; done"
check "the database backup is signed (verified with the keyring)" grep -q "signature ok" "$work/backup-unit.out"
sleep 1  # the file names carry the second
run_backup_unit "$bounding" > "$work/backup-unit-2.out" 2> "$work/backup-unit-2.err"
check "a second run: a new database backup, no keyring backup (the keyring is unchanged)" bash -c "
    [ \$(ls '$backups'/registry-*.anrgbak | wc -l) = 2 ] && [ \$(ls '$backups'/keys-*.anrgkbk | wc -l) = 1 ] &&
    grep -q 'keyring unchanged' '$work/backup-unit-2.out'"
before=$(ls "$backups" | wc -l)
check "without CAP_SETUID/CAP_SETGID the service cannot switch, and writes nothing" bash -c "
    ! setpriv --inh-caps=-all --bounding-set=-all --no-new-privs --groups=$SOCKGROUP -- \
        env CREDENTIALS_DIRECTORY='$creds' ANONREG_SOCKET='$socket' bash -c 'umask 0077; exec $exec_start' > /dev/null 2> '$work/backup-unit-nocap.err' &&
    grep -q 'could not switch' '$work/backup-unit-nocap.err' && [ \$(ls '$backups' | wc -l) = $before ]"

# 8c. The monthly drill on what the service wrote: a trial restore of the newest pair, which
#     leaves nothing in $TMPDIR.
mkdir -p "$work/drill-tmp"
TMPDIR=$work/drill-tmp "$anonreg" backup verify "$newest_db" --trial-restore --keyring-backup "$newest_keys" \
    --passphrase-file "$creds/anonreg-backup-passphrase" > "$work/trial.out" 2> "$work/trial.err"
check "the trial restore of the service's pair succeeds" test $? = 0
check "it opened the one subject left (the withdrawn one stays erased)" bash -c "
    grep -Eq '^subjects after restore +1$' '$work/trial.out' && grep -Eq '^opened +1 ' '$work/trial.out' &&
    grep -Eq '^result +a real restore would succeed$' '$work/trial.out'"
check "the trial restore leaves nothing in TMPDIR" test -z "$(ls -A "$work/drill-tmp")"
check "SIGTERM stops the daemon with status 0" stop_daemon

# 9. Lose the state, as a dead disk would; the directories come back as tmpfiles makes them.
rm -rf "$state"
install -d -m 0750 -o "$SERVICE" -g "$SERVICE" "$state"
install -d -m 0700 -o "$SERVICE" -g "$SERVICE" "$state/keys"

# 10. Restore the newest pair as root: the keyring, then the database.
check "keys restore as root" "$anonreg" keys restore "$safe/keys.anrgkbk" --state-dir "$state" --passphrase-file "$safe/pass" --force
check "backup restore as root" bash -c "'$anonreg' backup restore '$safe/registry.anrgbak' --state-dir '$state' > '$work/restore.out' 2> '$work/restore.err'"
check "the restore erased the withdrawn subject again" grep -q "erased again by the ledger   1" "$work/restore.out"
check "everything restored is the service user's" bash -c "
    find '$state' -mindepth 1 ! -user $SERVICE | grep . && exit 1 || exit 0"
check "the restored daemon starts" start_daemon
case_status() { setpriv --reuid="$CLINIC" --regid="$SOCKGROUP" --clear-groups curl -s -o /dev/null -w '%{http_code}' --unix-socket "$socket" "http://anonreg/v1/cases/$1"; }
kept_status=$(case_status "$kept_case")
gone_status=$(case_status "$gone_case")
echo "       kept case: $kept_status, withdrawn case: $gone_status"
check "the kept case is served" test "$kept_status" = "200"
check "the withdrawn case stays gone" test "$gone_status" = "404"
check "audit verify through the daemon" bash -c "ANONREG_SOCKET='$socket' '$anonreg' audit verify > /dev/null"
check "SIGTERM stops the restored daemon with status 0" stop_daemon
check "audit verify offline, as root" "$anonreg" audit verify --state-dir "$state"

echo "operations: $passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
    echo "--- daemon log"; tail -30 "$work/daemon.log"
fi
[ "$failed" -eq 0 ]
