#!/usr/bin/env bash
# Part of `make test`: anonreg-clinic, the executable a clinic's host runs, links no keyring,
# store, server or admin code and no SQLite (README.md, docs/OPERATIONS.md §Remote clinics).
# Proved from the linked binary, not from Package.swift: every defined symbol is listed with nm
# and searched for the mangled names of the forbidden Swift modules (Swift mangles a module as
# its length and name, e.g. 15RegistryKeyring), and the dynamic dependencies for libsqlite3.
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
clinic_symbols=$(nm --defined-only "$clinic")
declare -A control_symbols=([anonreg]="$(nm --defined-only "$admin")" [anonregd]="$(nm --defined-only "$BIN/anonregd")")
modules=()
for entry in "${FORBIDDEN[@]}"; do
    m=${entry%%:*}
    control=${entry#*:}
    modules+=("$m")
    count=$(grep -cE "${#m}$m" <<<"$clinic_symbols" || true)
    if [ "$count" -ne 0 ]; then
        echo "check-clinic-binary: anonreg-clinic defines $count symbol(s) of $m, e.g.:" >&2
        grep -E "${#m}$m" <<<"$clinic_symbols" | head -3 >&2
        status=1
    fi
    if ! grep -qE "${#m}$m" <<<"${control_symbols[$control]}"; then
        echo "check-clinic-binary: the control failed: $control defines no symbol of $m, so the search cannot be trusted" >&2
        status=1
    fi
done
if ldd "$clinic" | grep -q libsqlite3; then
    echo "check-clinic-binary: anonreg-clinic is linked against libsqlite3:" >&2
    ldd "$clinic" | grep libsqlite3 >&2
    status=1
fi
if ! ldd "$admin" | grep -q libsqlite3; then
    echo "check-clinic-binary: the control failed: anonreg is not linked against libsqlite3" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "check-clinic-binary: anonreg-clinic links none of ${modules[*]} and no libsqlite3 (the controls anonreg and anonregd do)"
exit "$status"
