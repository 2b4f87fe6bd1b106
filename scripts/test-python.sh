#!/usr/bin/env bash
# The Python side of `make test`: the protocol documents checked against each other, then the
# Python client (installed from ./clients/python into the virtualenv of scripts/setup.sh) and the
# remote-clinic test against the real binaries in BIN_DIR (default .build/debug).
# Needs root, like the Swift end-to-end tests: it runs peers as other uids, and sshd.
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir="${1:-$PWD/.build/debug}"
venv="$PWD/.build-python/venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "test-python: no virtualenv at $venv; run scripts/setup.sh" >&2
    exit 1
fi
"$venv/bin/python" scripts/check-protocol-docs.py
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall ./clients/python
rm -rf clients/python/build clients/python/*.egg-info
cd clients/python/tests
ANONREG_BIN_DIR="$bin_dir" exec "$venv/bin/python" -m pytest -q -p no:cacheprovider .
