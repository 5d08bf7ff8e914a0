#!/usr/bin/env bash
# Installs everything the tests need and runs every test: formatting, lints, unit tests, the
# integration tests (the real agent over HTTP, a real OpenID Provider, a real SAML IdP), the property
# tests of every parser of outside input (PROPTEST_CASES), schemathesis against /openapi.json, the web
# UI's browser tests (headless chromium) and the desktop app's test under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-debian.sh --test --desktop
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (the core: GUI-free, first)"
cargo test --all-targets --no-fail-fast
echo "== schemathesis (tests/fuzz: the outside fuzzer against the live agent, from /openapi.json)"
cargo build --bin amove-agent
if [ -d target/venv/bin ]; then PATH="$PWD/target/venv/bin:$PATH"; fi
rc=0
python3 tests/fuzz/run_schemathesis.py target/debug/amove-agent || rc=1
echo "== cargo test -p amove-desktop (the shell's unit tests)"
cargo test -p amove-desktop --no-fail-fast
echo "== ui tests (tests/ui: the web UI in headless chromium against the real agent)"
node tests/ui/run.mjs || rc=1
echo "== desktop test (tests/desktop: the Tauri app under Xvfb)"
cargo build -p amove-desktop
node tests/desktop/run.mjs || rc=1
exit $rc
