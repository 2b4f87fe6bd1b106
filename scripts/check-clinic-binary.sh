#!/usr/bin/env bash
# Part of `make test`: anonreg-clinic, the executable a clinic's host runs, links no keyring,
# store, server or admin code and no SQLite (README.md, docs/OPERATIONS.md §Remote clinics).
# Proved from the linked binary, not from Package.swift: every symbol, defined or needed, static
# or dynamic, is listed with nm and searched for the mangled names of the forbidden Swift modules
# (Swift mangles a module as its length and name, e.g. 15RegistryKeyring) and for SQLite's C API
# (sqlite3_*); and the libraries the binary needs (ldd) are searched for SQLite and for those
# modules built as shared libraries.
# The same search on a binary that links the module (anonreg, or anonregd for the server) must
# find it: a search that finds nothing anywhere proves nothing, so that fails too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/.build/debug}
# module:the binary that must link it (the control)
FORBIDDEN=(RegistryKeyring:anonreg RegistryStore:anonreg AnonregAdmin:anonreg GRDB:anonreg RegistryServer:anonregd)
clinic="$BIN/anonreg-clinic"
admin="$BIN/anonreg"
for binary in "$clinic" "$admin" "$BIN/anonregd"; do
    [ -x "$binary" ] || { echo "check-clinic-binary: $binary is missing; build it first (swift build)" >&2; exit 1; }
done
status=0
symbols() { { nm "$1"; nm -D "$1" 2>/dev/null || true; } | sort -u; }
clinic_symbols=$(symbols "$clinic")
declare -A control_symbols=([anonreg]="$(symbols "$admin")" [anonregd]="$(symbols "$BIN/anonregd")")
modules=()
for entry in "${FORBIDDEN[@]}"; do
    m=${entry%%:*}
    control=${entry#*:}
    modules+=("$m")
    count=$(grep -cE "${#m}$m" <<<"$clinic_symbols" || true)
    if [ "$count" -ne 0 ]; then
        echo "check-clinic-binary: anonreg-clinic has $count symbol(s) of $m, e.g.:" >&2
        grep -E "${#m}$m" <<<"$clinic_symbols" | head -3 >&2
        status=1
    fi
    if ! grep -qE "${#m}$m" <<<"${control_symbols[$control]}"; then
        echo "check-clinic-binary: the control failed: $control has no symbol of $m, so the search cannot be trusted" >&2
        status=1
    fi
done
if grep -qE '\bsqlite3_' <<<"$clinic_symbols"; then
    echo "check-clinic-binary: anonreg-clinic names SQLite's C API:" >&2
    grep -E '\bsqlite3_' <<<"$clinic_symbols" | head -3 >&2
    status=1
fi
if ! grep -qE '\bsqlite3_' <<<"${control_symbols[anonreg]}"; then
    echo "check-clinic-binary: the control failed: anonreg names no sqlite3_ symbol" >&2
    status=1
fi
needed=$(ldd "$clinic")
if grep -qiE "libsqlite3|$(IFS='|'; echo "${modules[*]}")" <<<"$needed"; then
    echo "check-clinic-binary: anonreg-clinic needs a forbidden library:" >&2
    grep -iE "libsqlite3|$(IFS='|'; echo "${modules[*]}")" <<<"$needed" >&2
    status=1
fi
if ! ldd "$admin" | grep -q libsqlite3; then
    echo "check-clinic-binary: the control failed: anonreg is not linked against libsqlite3" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "check-clinic-binary: anonreg-clinic links none of ${modules[*]} and no libsqlite3 (the controls anonreg and anonregd do)"
exit "$status"
