#!/usr/bin/env bash
# Starts anonregd on a local state directory (default ./state), creating it on first use with
# `anonreg init`. Stop it with Ctrl-C (SIGINT drains in-flight requests, then exits 0).
set -euo pipefail
: "${STATE_DIR:=$PWD/state}"
: "${BIN:=$PWD/.build/debug}"

if [ ! -f "$STATE_DIR/anonreg.toml" ]; then
    "$BIN/anonreg" init --state-dir "$STATE_DIR"
fi
echo "anonregd: socket $STATE_DIR/anonreg.sock (try: curl --unix-socket $STATE_DIR/anonreg.sock http://x/v1/health)"
exec "$BIN/anonregd" --config "$STATE_DIR/anonreg.toml"
