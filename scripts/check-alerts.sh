#!/usr/bin/env bash
# `make alerts-check`, part of `make test`: docs/alerts.yml is valid Prometheus rules
# (`promtool check rules`) and each alert fires when, and only when, its documented condition
# holds (`promtool test rules`: scripts/alerts.test.yml, scripts/alerts-kek.test.yml). That the
# metrics it names are the ones anonregd exports is MonitorAndGaugesTests' part.
# promtool comes with Debian's prometheus package (scripts/setup.sh); its server is never run.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null 2>&1; then
    echo "alerts: promtool is missing; run scripts/setup.sh (Debian package prometheus)" >&2
    exit 1
fi
promtool check rules docs/alerts.yml
promtool test rules scripts/alerts.test.yml scripts/alerts-kek.test.yml
echo "alerts: docs/alerts.yml passes promtool check rules and its unit tests"
