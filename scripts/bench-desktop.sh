#!/usr/bin/env bash
# Measures the desktop app (BENCHMARKS.md): what the tray app holds idle with no window open —
# its anonymous memory (RssAnon, /proc/PID/status) and its PSS (/proc/PID/smaps_rollup), not RSS,
# which counts clean library pages the kernel can drop at any time — its idle CPU, and the time
# from the request to the sign-in window's page being ready. Builds the release app and runs the
# desktop test against it under Xvfb; IDLE_SECONDS sets the idle window (default 30).
# PROFILE=debug measures the debug build instead (what CI builds). `GDK_GL= scripts/bench-desktop.sh`
# (set, empty) measures the app without its GDK_GL=disable self-restart (src-tauri/src/lib.rs).
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
print(f"| RssAnon just after start-up (tray up) | {r['startRssAnonMb']:.1f} MB | |")
met = "met" if r["idleRssAnonMb"] < 20 else "**missed**"
print(f"| RssAnon, tray app idle, no window | {r['idleRssAnonMb']:.1f} MB | < 20 MB — {met} |")
print(f"| RssAnon at the end of the idle window | {r['idleEndRssAnonMb']:.1f} MB | |")
print(f"| PSS, idle (anon / file) | {r['idlePssMb']:.1f} MB ({r['idlePssAnonMb']:.1f} / {r['idlePssFileMb']:.1f}) | |")
print(f"| CPU, idle {r['idleSeconds']} s, no window | {r['idleCpuTicks']} ticks ({cpu:.2f} %) | none measurable |")
acpu = 100.0 * r["armedIdleCpuTicks"] / hz / r["armedIdleSeconds"]
print(f"| CPU, idle {r['armedIdleSeconds']} s signed in, expiry timer armed, no window | {r['armedIdleCpuTicks']} ticks ({acpu:.2f} %) | none measurable |")
print(f"| sign-in window ready after the request | {r['signinReadyMs']} ms | < 500 ms |")
print(f"| admin window ready after the request | {r['adminReadyMs']} ms | |")
print(f"| GDK_GL | {r['gdkGl']} | |")
PY
