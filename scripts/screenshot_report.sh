#!/usr/bin/env bash
# Render a report.html to PNG with headless Chromium (not needed by CI).
#
#   scripts/screenshot_report.sh REPORT_HTML OUT_PNG [WIDTH] [HEIGHT] [MAX_KB]
#
# Needs `chromium` (apt-get install -y chromium). The page is self-contained, and
# Chromium runs with networking features off and a throw-away profile. When the PNG
# is larger than MAX_KB (default 400), it is re-saved with a 256-colour palette
# (Pillow, which matplotlib already needs).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 REPORT_HTML OUT_PNG [WIDTH] [HEIGHT] [MAX_KB]" >&2
  exit 64
fi
html="$(realpath "$1")"
out="$(realpath -m "$2")"
width="${3:-1200}"
height="${4:-2400}"
max_kb="${5:-400}"
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python="python3"

browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$browser" ]]; then
  echo "chromium not found; install it with: apt-get install -y chromium" >&2
  exit 69
fi
[[ -f "$html" ]] || { echo "$html: no such file" >&2; exit 66; }
mkdir -p "$(dirname "$out")"

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$out" --window-size="$width,$height" "file://$html" >/dev/null 2>&1

[[ -s "$out" ]] || { echo "chromium wrote no screenshot" >&2; exit 70; }
size_kb=$(( $(stat -c %s "$out") / 1024 ))
if (( size_kb > max_kb )); then
  "$python" - "$out" <<'PY'
import sys
from PIL import Image

path = sys.argv[1]
img = Image.open(path).convert("RGB")
img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
PY
fi
echo "$out ($(( $(stat -c %s "$out") / 1024 )) KB)"
