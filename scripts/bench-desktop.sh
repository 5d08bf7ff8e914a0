#!/usr/bin/env bash
# Measures the desktop app (BENCHMARKS.md): RSS and CPU of the tray app idle with no window open,
# and the time from the request to the sign-in window's page being ready. Builds the release app
# and runs the desktop test against it under Xvfb; IDLE_SECONDS sets the idle window (default 30).
# PROFILE=debug measures the debug build instead (what CI builds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh --desktop
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then cargo build --release -p amove-desktop --bin amove-desktop; fi
cargo build --bin amove-agent
out="$(mktemp)"
AMOVE_DESKTOP_BIN="target/$profile/amove-desktop" IDLE_SECONDS="${IDLE_SECONDS:-30}" BENCH_OUT="$out" \
  node tests/desktop/run.mjs
python3 - "$out" "$profile" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
hz = os.sysconf("SC_CLK_TCK")
cpu = 100.0 * r["idleCpuTicks"] / hz / r["idleSeconds"]
print(f"\n| measure ({sys.argv[2]} build) | value | target |\n| --- | --- | --- |")
print(f"| RSS just after start-up (tray up, before the idle release) | {r['startRssMb']:.1f} MB (file {r['startRssFileMb']:.1f}) | |")
print(f"| RSS, tray app idle, no window | {r['idleRssMb']:.1f} MB (anon {r['idleRssAnonMb']:.1f}, file {r['idleRssFileMb']:.1f}) | < 60 MB |")
print(f"| RSS at the end of the idle window | {r['idleEndRssMb']:.1f} MB | |")
print(f"| PSS / USS (private), same moment | {r['idlePssMb']:.1f} MB / {r['idleUssMb']:.1f} MB | |")
print(f"| CPU, idle {r['idleSeconds']} s, no window | {r['idleCpuTicks']} ticks ({cpu:.2f} %) | none measurable |")
print(f"| sign-in window ready after the request | {r['signinReadyMs']} ms | < 500 ms |")
print(f"| admin window ready after the request | {r['adminReadyMs']} ms | |")
PY
