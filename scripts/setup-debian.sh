#!/usr/bin/env bash
# Installs what the agent needs on Debian (bookworm or later).
#   scripts/setup-debian.sh            build + run the agent
#   scripts/setup-debian.sh --test     ... plus everything the tests start (IdPs, python)
#   scripts/setup-debian.sh --bench    ... plus the benchmark's load generator and BoxyHQ Jackson
#   scripts/setup-debian.sh --desktop  ... plus the desktop app (WebKitGTK, appindicator) and its
#                                      tests (Xvfb, dbus, chromium, xdg-utils, imagemagick, a tray
#                                      host, a notification server, xdotool, tesseract)
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0; want_bench=0; want_desktop=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --bench) want_bench=1 ;;
    --desktop) want_desktop=1 ;;
    *) echo "usage: $0 [--test] [--bench] [--desktop]" >&2; exit 2 ;;
  esac
done

SUDO=""
# The outside fuzzer's version (PyPI), pinned.
SCHEMATHESIS_VERSION=4.32.5
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

pkgs=(build-essential pkg-config libssl-dev libxmlsec1-dev libclang-dev ca-certificates curl)
if [ "$want_test" = 1 ]; then pkgs+=(nodejs npm python3 python3-pip sqlite3); fi
# linux-perf: only for BENCH_SAML_PERF=PREFIX (a profile of each SAML load run; bench/saml_bench.py).
if [ "$want_bench" = 1 ]; then pkgs+=(wrk nodejs npm linux-perf); fi
if [ "$want_desktop" = 1 ]; then
  # Build: Tauri v2 on WebKitGTK 4.1 with the tray. Run: xdg-utils (the deep-link plugin calls
  # xdg-mime), dbus (single-instance). Tests: Xvfb, a screenshot tool, Debian's chromium for the
  # web UI tests (playwright-core cannot download browsers here).
  # The tray test (tests/desktop/screen.mjs): a tray host (trayer: an XEmbed tray, which
  # appindicator falls back to without a StatusNotifierWatcher), a notification server (dunst),
  # clicks and keys (xdotool), OCR of the menu and windows (tesseract), a short-lived
  # certificate (openssl).
  pkgs+=(libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
         xdg-utils dbus dbus-x11 xvfb xauth imagemagick chromium nodejs npm procps webkit2gtk-driver
         trayer dunst xdotool x11-utils tesseract-ocr tesseract-ocr-eng openssl)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node, npm and python3 may come from elsewhere (nvm, pyenv): accept those.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null || filtered+=("$p") ;;
    npm) command -v npm >/dev/null || filtered+=("$p") ;;
    python3) command -v python3 >/dev/null || filtered+=("$p") ;;
    python3-pip) python3 -m pip --version >/dev/null 2>&1 || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
if [ "${#filtered[@]}" -gt 0 ]; then
  echo "setup: installing ${filtered[*]}"
  # A private archive cache: on some machines downloaded .debs vanish between dpkg runs.
  cache="$(mktemp -d)"; mkdir -p "$cache/partial"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    -o Dir::Cache::archives="$cache/" "${filtered[@]}" >/dev/null
  rm -rf "$cache"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: installing the Rust toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi

if [ "$want_desktop" = 1 ] && ! command -v tauri-driver >/dev/null; then
  # WebDriver for the real window (tests/desktop), on top of Debian's WebKitWebDriver.
  cargo install tauri-driver --version "^2" --locked --quiet
fi

if [ "$want_desktop" = 1 ] && [ ! -d tests/ui/node_modules/playwright-core ]; then
  npm ci --prefix tests/ui --no-audit --no-fund --loglevel=error
fi

if [ "$want_test" = 1 ]; then
  # The real OpenID Provider (oidc-provider from npm, pinned by its lockfile).
  if [ ! -d tests/idp/oidc/node_modules/oidc-provider ]; then
    npm ci --prefix tests/idp/oidc --no-audit --no-fund --loglevel=error
  fi
  # The real SAML IdP (SimpleSAMLphp from Debian).
  bash tests/idp/saml/install.sh
  # The outside fuzzer of the API (tests/fuzz/run_schemathesis.py), pinned. Debian's own python3
  # refuses pip installs (PEP 668): then into a venv under target/, put on PATH by test.sh.
  if ! command -v schemathesis >/dev/null || [ "$(schemathesis --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    if ! python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION" 2>/dev/null; then
      target/venv/bin/python -m pip --version >/dev/null 2>&1 || {
        python3 -m venv target/venv 2>/dev/null || {
          cache="$(mktemp -d)"; mkdir -p "$cache/partial"
          DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            -o Dir::Cache::archives="$cache/" python3-venv >/dev/null
          rm -rf "$cache"
          python3 -m venv --clear target/venv
        }
      }
      target/venv/bin/python -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
    fi
  fi
  # The seed's Python samples use requests.
  # Debian's own python3 refuses pip installs (PEP 668): use its package there.
  if ! python3 -c 'import requests' 2>/dev/null; then
    python3 -m pip install --quiet requests 2>/dev/null || {
      cache="$(mktemp -d)"; mkdir -p "$cache/partial"
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        -o Dir::Cache::archives="$cache/" python3-requests >/dev/null
      rm -rf "$cache"
    }
  fi
fi
if [ "$want_bench" = 1 ] && [ ! -d bench/jackson/node_modules/@boxyhq/saml-jackson ]; then
  # BoxyHQ Jackson, measured next to the agent (pinned by bench/jackson/package-lock.json).
  npm ci --prefix bench/jackson --no-audit --no-fund --loglevel=error
fi
echo "setup: done"
