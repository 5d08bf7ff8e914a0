#!/usr/bin/env bash
# Installs everything the tests need and runs every test: formatting, lints, unit tests and the
# integration tests (the real agent over HTTP, a real OpenID Provider, a real SAML IdP).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-debian.sh --test
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets --no-fail-fast
