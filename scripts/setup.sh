#!/usr/bin/env bash
# Installs what anonreg needs to build and test on Debian 12, and nothing that is already there.
# Used by `make run`, `make test` and CI; safe to run repeatedly.
set -euo pipefail

if ! command -v swift >/dev/null 2>&1; then
    echo "setup: no Swift toolchain on PATH. Install Swift 6.1 or later (swift.org) and retry." >&2
    exit 1
fi

# Debian packages: build (libsodium via pkg-config, SQLite for the store, libqrencode for the
# patient card's QR code) and the tools the end-to-end tests drive (sqlite3, curl, socat, setpriv
# from util-linux, systemd-socket-activate, git for the build-info and archive checks), strace
# for the durability trace test, mandoc (man page lint), python3 with PyYAML and jsonschema (the
# man page generator and the check of every response against docs/openapi.yaml).
# python3-venv: the Python client's tests and the protocol-docs check run in a virtualenv.
# openssh-server: the remote-clinic test starts a throwaway sshd of its own (never the system's).
# prometheus: only for promtool, which checks docs/alerts.yml and runs its unit tests
# (scripts/check-alerts.sh); its server is never started.
# The card: rsvg-convert (librsvg2-bin) makes PDF cards at run time and renders cards to PNG in the
# tests, with the DejaVu fonts the card names; zbarimg (zbar-tools) and pdftoppm/pdftotext
# (poppler-utils) read them back in the tests only.
# postgresql (15 on Debian 12): the PostgreSQL backend's tests start throwaway clusters of their
# own with /usr/lib/postgresql/15/bin (Tests/AnonregTestSupport/ThrowawayPostgres.swift, run as
# the package's unprivileged user postgres when the tests run as root); the system's cluster and
# service are never used. openssl makes those clusters' TLS certificates.
packages=(pkg-config libsodium-dev libsqlite3-dev sqlite3 curl socat util-linux systemd git strace mandoc
          python3 python3-yaml python3-jsonschema python3-venv openssh-server prometheus
          libqrencode-dev librsvg2-bin fonts-dejavu-core zbar-tools poppler-utils openssl)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
# Checked by the program the tests run rather than by package name: the `postgresql`
# metapackage may be absent where postgresql-15 itself is installed.
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
    missing+=(postgresql)
fi

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    # Install without starting services: openssh-server would otherwise start the system's sshd
    # on port 22, postgresql the system's cluster on port 5432 (policy-rc.d 101 = "do not start",
    # Debian's invoke-rc.d convention).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod 0755 "$policy"
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
        [ -n "$policy" ] && $sudo rm -f "$policy"
        exit 1
    }
    [ -n "$policy" ] && $sudo rm -f "$policy"
    if [[ " ${missing[*]} " == *" openssh-server "* ]] && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --quiet ssh.service ssh.socket 2>/dev/null || true
        echo "setup: installed openssh-server for the tests; its system service is left disabled"
    fi
    if [[ " ${missing[*]} " == *" postgresql "* ]] && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --quiet postgresql.service 2>/dev/null || true
        echo "setup: installed postgresql for the tests' throwaway clusters; its system service is left disabled"
    fi
    if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --quiet prometheus.service 2>/dev/null || true
        echo "setup: installed prometheus for promtool; its system service is left disabled"
    fi
fi

if ! pkg-config --exists 'libsodium >= 1.0.18'; then
    echo "setup: libsodium 1.0.18 or later is required (pkg-config libsodium)." >&2
    exit 1
fi

# The Python client's test environment: a virtualenv (Debian's python3, not a user's pyenv) with
# the client's dependency (pysodium, which loads the system libsodium), pytest and
# openapi-spec-validator from PyPI. scripts/test-python.sh installs the client itself into it on
# every run, from ./clients/python, as a clinic would.
venv="$(cd "$(dirname "$0")/.." && pwd)/.build-python/venv"
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "pysodium>=0.7.12" "pytest>=7" "openapi-spec-validator>=0.7" "setuptools>=61"
