#!/usr/bin/env bash
# systemd integration tests (part of `make test`): hardening score, `make install` into a DESTDIR
# root, `systemd-analyze verify` there, sysusers/tmpfiles into that root, and the installed
# daemon under systemd-socket-activate with the socket unit's owner, group and mode.
# Needs root (it runs processes as other uids with setpriv). Prints "N passed, M failed".
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

work=$(mktemp -d /tmp/anonreg-systemd-XXXXXX)
chmod 0755 "$work"
daemon_pid=""
cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# 1. Hardening: the unit scores 0.5 or lower (Debian 12's systemd-localed scores 1.2).
score=$(systemd-analyze security --offline=true systemd/anonregd.service 2>/dev/null | awk '/Overall exposure level/ {print $(NF-2)}')
echo "       exposure score: $score"
check "hardening score <= 0.5" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 0.5) }'

# 1b. The PostgreSQL-over-TCP drop-in: only the database's address is reachable, and the score
# it costs is reported (docs/OPERATIONS.md §PostgreSQL and several nodes).
dropin=$work/dropin
mkdir -p "$dropin/anonregd.service.d"
cp systemd/anonregd.service "$dropin/"
cp systemd/anonregd.service.d/postgresql-tcp.conf.example "$dropin/anonregd.service.d/postgresql-tcp.conf"
tcp_score=$(systemd-analyze security --offline=true "$dropin/anonregd.service" 2>/dev/null | awk '/Overall exposure level/ {print $(NF-2)}')
echo "       exposure score with the PostgreSQL TCP drop-in: $tcp_score"
check "TCP drop-in: every address denied but the database's" bash -c "
    grep -qx 'IPAddressDeny=any' systemd/anonregd.service.d/postgresql-tcp.conf.example &&
    test \$(grep -c '^IPAddressAllow=' systemd/anonregd.service.d/postgresql-tcp.conf.example) = 1 &&
    ! grep -q '^IPAddressAllow=any' systemd/anonregd.service.d/postgresql-tcp.conf.example"
check "TCP drop-in: exposure score <= 1.5" awk -v s="$tcp_score" 'BEGIN { exit !(s != "" && s <= 1.5) }'

# 2. make install into a DESTDIR root, then systemd-analyze verify on the installed units.
root=$work/root
make --no-print-directory install DESTDIR="$root" BINARIES="$BIN" > "$work/install.log" 2>&1
check "make install" test -x "$root/usr/local/bin/anonregd" -a -x "$root/usr/local/bin/anonreg" -a -x "$root/usr/local/bin/anonreg-clinic" \
    -a -f "$root/usr/local/lib/systemd/system/anonregd.service" -a -f "$root/usr/local/lib/systemd/system/anonregd.socket" \
    -a -f "$root/usr/local/lib/systemd/system/anonreg-rotate.service" -a -f "$root/usr/local/lib/systemd/system/anonreg-rotate.timer" \
    -a -f "$root/usr/local/lib/systemd/system/anonreg-backup.service" -a -f "$root/usr/local/lib/systemd/system/anonreg-backup.timer" \
    -a -f "$root/etc/anonreg/anonreg.toml" -a -f "$root/usr/local/share/man/man8/anonregd.8" -a -f "$root/usr/local/share/man/man1/anonreg-clinic.1" \
    -a -f "$root/usr/local/share/doc/anonreg/OPERATIONS.md" \
    -a -f "$root/usr/local/lib/systemd/system/anonregd.service.d/postgresql-tcp.conf.example"
# Another PREFIX reaches every installed path: units (Exec, Documentation), timers, man pages.
prefixed=$work/prefixed
make --no-print-directory install DESTDIR="$prefixed" PREFIX=/opt/anonreg BINARIES="$BIN" > "$work/install-prefixed.log" 2>&1
check "PREFIX=/opt/anonreg: no /usr/local left in units or man pages" bash -c "
    ! grep -rl /usr/local '$prefixed/opt/anonreg/lib/systemd' '$prefixed/opt/anonreg/share/man' &&
    grep -q 'Documentation=file:/opt/anonreg/share/doc/anonreg/OPERATIONS.md' '$prefixed/opt/anonreg/lib/systemd/system/anonreg-rotate.timer' &&
    grep -q 'Documentation=file:/opt/anonreg/share/doc/anonreg/OPERATIONS.md' '$prefixed/opt/anonreg/lib/systemd/system/anonreg-backup.timer' &&
    grep -q '^ExecStart=/opt/anonreg/bin/anonreg backup scheduled' '$prefixed/opt/anonreg/lib/systemd/system/anonreg-backup.service' &&
    grep -q '^ExecReload=/opt/anonreg/bin/anonregd --check-config' '$prefixed/opt/anonreg/lib/systemd/system/anonregd.service'"
check "installed config is valid" "$root/usr/local/bin/anonreg" clinics list --config "$root/etc/anonreg/anonreg.toml"
# verify resolves dependencies (sysinit.target, ...) and ExecReload's kill inside the root.
mkdir -p "$root/lib/systemd" "$root/bin"
cp -a /lib/systemd/system "$root/lib/systemd/"
cp /bin/kill "$root/bin/"
check "systemd-analyze verify" systemd-analyze verify --root="$root" --man=no \
    /usr/local/lib/systemd/system/anonregd.service /usr/local/lib/systemd/system/anonregd.socket \
    /usr/local/lib/systemd/system/anonreg-rotate.service /usr/local/lib/systemd/system/anonreg-rotate.timer \
    /usr/local/lib/systemd/system/anonreg-backup.service /usr/local/lib/systemd/system/anonreg-backup.timer

# 3. sysusers and tmpfiles into the root.
systemd-sysusers --root="$root" > /dev/null 2>&1
check "sysusers: user anonreg" grep -q '^anonreg:x:[0-9]*:[0-9]*:anonreg registry daemon:/var/lib/anonreg:/usr/sbin/nologin$' "$root/etc/passwd"
check "sysusers: group anonreg" grep -q '^anonreg:x:' "$root/etc/group"
check "sysusers: group anonreg-clinic" grep -q '^anonreg-clinic:x:' "$root/etc/group"
systemd-tmpfiles --root="$root" --create anonreg.conf > /dev/null 2>&1
uid=$(awk -F: '$1 == "anonreg" {print $3}' "$root/etc/passwd")
gid=$(awk -F: '$1 == "anonreg" {print $3}' "$root/etc/group")
cgid=$(awk -F: '$1 == "anonreg-clinic" {print $3}' "$root/etc/group")
mode() { stat -c '%a %u %g' "$1" 2>/dev/null; }
check "tmpfiles: /var/lib/anonreg 0750 anonreg:anonreg" test "$(mode "$root/var/lib/anonreg")" = "750 $uid $gid"
check "tmpfiles: /var/lib/anonreg/keys 0700 anonreg:anonreg" test "$(mode "$root/var/lib/anonreg/keys")" = "700 $uid $gid"
check "tmpfiles: /run/anonreg 0750 anonreg:anonreg-clinic" test "$(mode "$root/run/anonreg")" = "750 $uid $cgid"
check "tmpfiles: /var/backups/anonreg 0700 anonreg:anonreg" test "$(mode "$root/var/backups/anonreg")" = "700 $uid $gid"

# 4. The installed daemon under systemd-socket-activate with the socket unit's settings.
#    Numeric ids stand in for the sysusers ones on this host: daemon 61001, clinic group 61002,
#    a clinic system 61003 (primary group 61002), an outsider 61004.
sock_mode=$(awk -F= '$1 == "SocketMode" {print $2}' systemd/anonregd.socket)
dir_mode=$(awk -F= '$1 == "DirectoryMode" {print $2}' systemd/anonregd.socket)
state=$work/state
run=$work/run
mkdir -m 0750 "$state" && chown 61001:61001 "$state"
mkdir -m "$dir_mode" "$run" && chown 61001:61002 "$run"
as_daemon() { setpriv --reuid=61001 --regid=61001 --clear-groups "$@"; }
as_daemon "$root/usr/local/bin/anonreg" init --state-dir "$state" > /dev/null
"$root/usr/local/bin/anonreg" clinics add north --uid 61003 --config "$state/anonreg.toml" > /dev/null
# Started directly (not through the shell function) so that $! is the daemon's own pid:
# setpriv and systemd-socket-activate both exec, they do not fork.
setpriv --reuid=61001 --regid=61001 --clear-groups systemd-socket-activate -l "$run/anonreg.sock" \
    "$root/usr/local/bin/anonregd" --config "$state/anonreg.toml" > "$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do [ -S "$run/anonreg.sock" ] && break; sleep 0.1; done
# What systemd does for SocketGroup=anonreg-clinic and SocketMode=0660:
chgrp 61002 "$run/anonreg.sock" && chmod "$sock_mode" "$run/anonreg.sock"
check "socket mode $sock_mode in a $dir_mode directory" test "$(stat -c '%a' "$run/anonreg.sock") $(stat -c '%a' "$run")" = "${sock_mode#0} ${dir_mode#0}"
status=""
for _ in $(seq 1 100); do
    status=$(setpriv --reuid=61003 --regid=61002 --clear-groups curl -s -o /dev/null -w '%{http_code}' \
        --unix-socket "$run/anonreg.sock" http://anonreg/v1/health 2>/dev/null)
    [ "$status" = "200" ] && break
    sleep 0.1
done
check "a clinic uid in the socket group is served" test "$status" = "200"
enrol=$(setpriv --reuid=61003 --regid=61002 --clear-groups curl -s -o /dev/null -w '%{http_code}' --unix-socket "$run/anonreg.sock" \
    --json '{"consent":{"form":"F","givenOn":"2026-01-10","method":"written","scope":["monitoring"]},"category":"dependence","enrolledOn":"2026-01-10"}' \
    http://anonreg/v1/subjects)
check "the clinic can enrol" test "$enrol" = "201"
# The message catalogues are compiled into the binaries: the installed ones, with no build
# directory or resource bundle beside them, answer in Russian (docs/TRANSLATING.md).
russian=$(setpriv --reuid=61003 --regid=61002 --clear-groups curl -s --unix-socket "$run/anonreg.sock" -H 'Accept-Language: ru' \
    --json '{"consent":{"form":"F","givenOn":"2026-01-10","method":"written","scope":["monitoring"]},"category":"dependence","enrolledOn":"2026-01-10"}' \
    http://anonreg/v1/subjects)
check "the installed daemon gives the reason in Russian" grep -q 'наблюдение начато 10 января 2026' <<<"$russian"
russian_code=$(sed -n 's/.*"code":"\([^"]*\)".*/\1/p' <<<"$russian")
check "the installed CLI makes a Russian card with that code" bash -c \
    "echo '$russian_code' | '$root/usr/local/bin/anonreg' card -o - --size sticker --lang ru | grep -q 'Ваш личный код'"
setpriv --reuid=61004 --regid=61004 --clear-groups curl -s -o /dev/null --unix-socket "$run/anonreg.sock" http://anonreg/v1/health 2> /dev/null
outsider=$?
check "an outsider is refused by file permissions (curl exit 7)" test "$outsider" = "7"
check "the outsider never reached the daemon" bash -c "! grep -q 'peer.uid=61004' '$work/daemon.log'"
check "the clinic's request reached it" grep -q 'peer.uid=61003' "$work/daemon.log"
kill "$daemon_pid" 2>/dev/null
wait "$daemon_pid" 2>/dev/null
daemon_status=$?
daemon_pid=""
check "SIGTERM stops the socket-activated daemon with status 0" test "$daemon_status" = "0"

# 5. make uninstall removes what install put there and keeps the configuration.
make --no-print-directory uninstall DESTDIR="$root" > "$work/uninstall.log" 2>&1
check "make uninstall removes binaries, units, snippets, docs, man pages" bash -c "
    for f in usr/local/bin/anonregd usr/local/bin/anonreg usr/local/lib/systemd/system/anonregd.service \
             usr/local/lib/systemd/system/anonregd.socket usr/local/lib/sysusers.d/anonreg.conf \
             usr/local/lib/systemd/system/anonreg-rotate.service usr/local/lib/systemd/system/anonreg-rotate.timer \
             usr/local/lib/tmpfiles.d/anonreg.conf usr/local/share/doc/anonreg usr/local/share/man/man8/anonregd.8; do
        [ ! -e '$root'/\$f ] || { echo \"left: \$f\"; exit 1; }
    done"
check "make uninstall keeps /etc/anonreg/anonreg.toml" test -f "$root/etc/anonreg/anonreg.toml"

echo "systemd: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
