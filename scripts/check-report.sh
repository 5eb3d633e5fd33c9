#!/usr/bin/env bash
# Renders a comparison report (heavy-lab compare's comparison.html) in headless Chromium, as a
# person would open it, and fails when a chart is broken:
#   1. Chromium (Debian's `chromium`, installed with apt-get when missing) loads the page offline
#      and dumps the DOM it built: it must hold at least the five over-time line charts, each
#      with a line per side;
#   2. a full-page screenshot (PNG) must show both sides' series colours in quantity
#      (heavy-lab report-png), so an SVG that renders nothing fails;
#   3. the page must not hold scientific notation or NaN.
# Usage: scripts/check-report.sh REPORT.html [SCREENSHOT.png [SIDES]]   (SIDES: 2)
# A machine without Chromium that cannot install it fails loudly: this check never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  printf 'check-report: FAILED: %s\n' "$*" >&2
  exit 1
}

[ "$#" -ge 1 ] && [ "$#" -le 3 ] || {
  echo "Usage: scripts/check-report.sh REPORT.html [SCREENSHOT.png [SIDES]]" >&2
  exit 2
}
page="$1"
[ -s "$page" ] || fail "$page is missing or empty"
page="$(cd "$(dirname "$page")" && pwd)/$(basename "$page")"
shot="${2:-${page%.html}.png}"

find_chromium() {
  command -v chromium || command -v chromium-browser || true
}

chromium="$(find_chromium)"
if [ -z "$chromium" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    fail "chromium is not installed and this is not root: run sudo apt-get install -y chromium"
  fi
  echo "installing Debian's chromium with apt-get (one time)"
  apt-get update -qq || fail "apt-get update failed: cannot install chromium"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
    fail "apt-get install chromium failed"
  chromium="$(find_chromium)"
  [ -n "$chromium" ] || fail "apt-get installed chromium, but no chromium binary is on PATH"
fi
"$chromium" --version || fail "$chromium does not run"

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --disable-dev-shm-usage --hide-scrollbars "--user-data-dir=$profile")

dom="$profile/dom.html"
timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$page" >"$dom" 2>"$profile/dump.log" ||
  fail "chromium --dump-dom failed: $(tail -n 5 "$profile/dump.log")"
charts="$(grep -o 'class="line-chart"' "$dom" | wc -l)"
lines="$(grep -o '<polyline' "$dom" | wc -l)"
echo "DOM: $charts over-time charts, $lines lines"
# At least the five k6 charts (latency, throughput, errors, queue, CPU); utilization charts join
# them when the runs sampled /metrics. Every chart must draw a line per side.
[ "$charts" -ge 5 ] || fail "expected at least 5 over-time charts in the rendered page, found $charts"
[ "$lines" -ge $((2 * charts)) ] || fail "expected at least 2 lines per chart ($charts charts), found $lines"
if grep -Eq '[0-9][eE][+-][0-9]|NaN|Infinity' "$page"; then
  fail "the page holds scientific notation, NaN or Infinity: $(grep -Eo '.{30}([0-9][eE][+-][0-9]|NaN|Infinity).{10}' "$page" | head -n 3)"
fi

rm -f "$shot"
timeout 120 "$chromium" "${flags[@]}" --window-size=1100,4200 "--screenshot=$shot" "file://$page" \
  >"$profile/shot.log" 2>&1 || fail "chromium --screenshot failed: $(tail -n 5 "$profile/shot.log")"
[ -s "$shot" ] || fail "chromium wrote no screenshot"
"$(scripts/setup.sh)/bin/heavy-lab" report-png --sides "${3:-2}" "$shot" || fail "the screenshot $shot does not show both sides' charts"
echo "check-report: $page renders (screenshot: $shot)"
