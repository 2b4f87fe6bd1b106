#!/usr/bin/env bash
# Part of `make test`: anonreg-clinic, the executable a clinic's host runs, links no keyring,
# store, server or admin code and no SQLite (README.md, docs/OPERATIONS.md §Remote clinics).
# Proved from the linked binary, not from Package.swift: every symbol, defined or needed, static
# or dynamic, is listed with nm and searched for the mangled names of the forbidden Swift modules
# (Swift mangles a module as its length and name, e.g. 15RegistryKeyring) and for SQLite's C API
# (sqlite3_*); and the libraries the binary needs (ldd) are searched for SQLite and for those
# modules built as shared libraries.
# The same search on a binary that links the module (anonreg, or anonregd for the server) must
# find it: a search that finds nothing anywhere proves nothing, so that fails too (and so does a
# stripped binary, which has no symbols to search).
#
# Checks the build directory BIN names (or the first argument), debug or release:
#   BIN="$(swift build --show-bin-path)" ./scripts/check-clinic-binary.sh
#   ./scripts/check-clinic-binary.sh "$(swift build -c release --show-bin-path)"
# .build/debug when neither is given.
set -euo pipefail
BIN=${1:-${BIN:-$(dirname "$0")/../.build/debug}}
[ -d "$BIN" ] || { echo "check-clinic-binary: no build directory $BIN; build first (swift build, or swift build -c release)" >&2; exit 1; }
BIN=$(cd "$BIN" && pwd)
# module:the binary that must link it (the control)
FORBIDDEN=(RegistryKeyring:anonreg RegistryStore:anonreg AnonregAdmin:anonreg GRDB:anonreg RegistryServer:anonregd)
clinic="$BIN/anonreg-clinic"
admin="$BIN/anonreg"
for binary in "$clinic" "$admin" "$BIN/anonregd"; do
    [ -x "$binary" ] || { echo "check-clinic-binary: $binary is missing; build it first (swift build, or swift build -c release)" >&2; exit 1; }
done
status=0

# Every symbol of binary $1, static and dynamic, one a line. Fails on a binary without a symbol
# table (stripped): its dynamic symbols alone would hide the code linked into it.
symbols() {
    local static
    static=$(nm "$1" 2>/dev/null) || true
    [ -n "$static" ] || { echo "check-clinic-binary: $1 has no symbol table (stripped?): nothing can be proved from it" >&2; return 1; }
    { printf '%s\n' "$static"; nm -D "$1" 2>/dev/null || true; } | sort -u
}
command -v nm >/dev/null || { echo "check-clinic-binary: nm is missing (binutils)" >&2; exit 1; }
clinic_symbols=$(symbols "$clinic")
admin_symbols=$(symbols "$admin")
daemon_symbols=$(symbols "$BIN/anonregd")
declare -A control_symbols=([anonreg]="$admin_symbols" [anonregd]="$daemon_symbols")

# forbid WHAT PATTERN CONTROL: anonreg-clinic has no symbol matching PATTERN (extended regex),
# and the control binary CONTROL (anonreg or anonregd) has one, or the search proves nothing.
forbid() {
    local what=$1 pattern=$2 control=$3 count
    count=$(grep -cE "$pattern" <<<"$clinic_symbols" || true)
    if [ "$count" -ne 0 ]; then
        echo "check-clinic-binary: anonreg-clinic has $count symbol(s) of $what, e.g.:" >&2
        grep -m3 -E "$pattern" <<<"$clinic_symbols" >&2
        status=1
    fi
    if ! grep -qE "$pattern" <<<"${control_symbols[$control]}"; then
        echo "check-clinic-binary: the control failed: $control has no symbol of $what, so the search cannot be trusted" >&2
        status=1
    fi
}

modules=()
for entry in "${FORBIDDEN[@]}"; do
    m=${entry%%:*}
    modules+=("$m")
    forbid "$m" "${#m}$m" "${entry#*:}"
done
forbid "SQLite's C API" '\bsqlite3_' anonreg

libraries="libsqlite3|$(IFS='|'; echo "${modules[*]}")"
needed=$(ldd "$clinic")
if grep -qiE "$libraries" <<<"$needed"; then
    echo "check-clinic-binary: anonreg-clinic needs a forbidden library:" >&2
    grep -iE "$libraries" <<<"$needed" >&2
    status=1
fi
if ! ldd "$admin" | grep -q libsqlite3; then
    echo "check-clinic-binary: the control failed: anonreg is not linked against libsqlite3" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "check-clinic-binary: anonreg-clinic in $BIN links none of ${modules[*]} and no libsqlite3 (the controls anonreg and anonregd do)"
exit "$status"
