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
# from util-linux, systemd-socket-activate). The card: rsvg-convert (librsvg2-bin) makes PDF cards
# at run time and renders cards to PNG in the tests, with the DejaVu fonts the card names;
# zbarimg (zbar-tools) and pdftoppm/pdftotext (poppler-utils) read them back in the tests only.
packages=(pkg-config libsodium-dev libsqlite3-dev sqlite3 curl socat util-linux systemd
          libqrencode-dev librsvg2-bin fonts-dejavu-core zbar-tools poppler-utils)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! pkg-config --exists 'libsodium >= 1.0.18'; then
    echo "setup: libsodium 1.0.18 or later is required (pkg-config libsodium)." >&2
    exit 1
fi
