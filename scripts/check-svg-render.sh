#!/usr/bin/env bash
# Checks that the statistics chart (`anonreg stats --format svg`) renders in a browser:
# starts anonregd on a temporary state directory, enrols a few subjects, stops it, writes the SVG
# with the offline CLI, renders it with headless Chromium to a PNG, and fails unless the PNG holds the chart
# (more than a handful of colours, including both series colours). Installs Chromium if it is
# missing (Debian: apt-get install chromium). Usage: scripts/check-svg-render.sh [BIN_DIR]
# (default: swift build --show-bin-path). Keeps the SVG and PNG in $OUT_DIR (default: a temp dir).
set -euo pipefail

bin="${1:-$(swift build --show-bin-path)}"
out="${OUT_DIR:-$(mktemp -d)}"
state="$(mktemp -d)/state"

if ! command -v chromium >/dev/null 2>&1; then
    echo "check-svg-render: installing chromium"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

"$bin/anonreg" init --state-dir "$state" >/dev/null
"$bin/anonregd" --config "$state/anonreg.toml" >"$out/anonregd.log" 2>&1 &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$(dirname "$state")"' EXIT
export ANONREG_SOCKET="$state/anonreg.sock"
for _ in $(seq 1 50); do "$bin/anonreg" health >/dev/null 2>&1 && break; sleep 0.1; done
for _ in $(seq 1 9); do "$bin/anonreg" enrol --category dependence --consent-form F --json >/dev/null; done
# `anonreg init` makes the admin's uid a clinic, and statistics are never for a clinic peer
# (docs/OPERATIONS.md §Statistics): stop the daemon and release them offline, as the guide says.
kill "$daemon"; wait "$daemon" 2>/dev/null || true
"$bin/anonreg" stats --state-dir "$state" --format svg --output "$out/chart.svg"

# Chromium refuses to run as root without --no-sandbox; the profile goes to the temp dir.
chromium --headless --no-sandbox --disable-gpu --user-data-dir="$out/profile" \
    --screenshot="$out/chart.png" --window-size=800,500 "file://$out/chart.svg" >"$out/chromium.log" 2>&1

python3 - "$out/chart.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, width, height, depth, ctype = 8, b'', 0, 0, 0, 0
while pos < len(data):
    length, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b'IHDR':
        width, height, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + length
assert depth == 8 and ctype in (2, 6), f'unexpected PNG format depth={depth} colour type={ctype}'
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), width * bpp
prev, colours, pixels, i = bytearray(stride), set(), [], 0
for _ in range(height):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        colours.add(bytes(line[x:x + 3]))
    prev = line
def near(rgb):
    return any(all(abs(p - q) <= 40 for p, q in zip(col, rgb)) for col in colours)
non_white = [c for c in colours if c != b'\xff\xff\xff']
print(f'check-svg-render: {width}x{height} PNG, {len(colours)} distinct colours')
assert len(colours) > 8, 'the PNG is blank'
assert near((0x1f, 0x77, 0xb4)), 'no enrolments series (blue) in the PNG'
assert near((0xd6, 0x27, 0x28)), 'no completions series (red) in the PNG'
PY
echo "check-svg-render: ok ($out/chart.png)"
