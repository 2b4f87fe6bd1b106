#!/usr/bin/env bash
# `make man-check`, part of `make test`: the committed man pages are exactly what
# scripts/manpage.py makes from the built commands and docs/man/*.sections (so the options and
# the pages cannot drift), and `mandoc -Tlint` prints nothing for them. Two mandoc messages
# depend on the host, not on the page, and are not counted: "referenced manual not found" (an
# .Xr to a page this host has not installed, anonreg(1) itself included) and "outdated
# mandoc.db".
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-$PWD/.build/debug}
out=$(mktemp -d /tmp/anonreg-man-XXXXXX)
trap 'rm -rf "$out"' EXIT
status=0
for page in anonreg.1 anonreg-clinic.1 anonregd.8; do
    name=${page%.*}
    section=${page#*.}
    python3 scripts/manpage.py "$BIN/$name" "docs/man/$page.sections" "$section" > "$out/$page"
    if ! diff -u "docs/man/$page" "$out/$page" > "$out/$page.diff"; then
        echo "man: docs/man/$page is not what \`make man\` makes from the commands now; run make man and commit:" >&2
        head -40 "$out/$page.diff" >&2
        status=1
    fi
    lint=$(mandoc -Tlint "docs/man/$page" 2>&1 | grep -v -e 'referenced manual not found' -e 'outdated mandoc.db' || true)
    if [ -n "$lint" ]; then
        echo "man: mandoc -Tlint docs/man/$page:" >&2
        echo "$lint" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "man: anonreg.1, anonreg-clinic.1 and anonregd.8 match the commands and pass mandoc -Tlint"
exit "$status"
