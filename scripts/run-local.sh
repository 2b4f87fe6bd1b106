#!/usr/bin/env bash
# Starts anonregd on a local state directory (default ./state), initialising it on first use.
set -euo pipefail
: "${STATE_DIR:=$PWD/state}"
: "${BIN:=$PWD/.build/debug}"

exec "$BIN/anonregd" --version
