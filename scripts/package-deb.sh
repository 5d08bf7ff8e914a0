#!/usr/bin/env bash
# Builds the desktop app in release mode and packages it as a .deb with the Tauri bundler:
#   target/release/bundle/deb/Amove_<version>_amd64.deb
# The bundler is the Tauri CLI from npm (prebuilt; `cargo install tauri-cli --version "^2"
# --locked` works too, then `cargo tauri bundle --bundles deb`). `tauri build` is not used: with
# tauri.conf.json at the workspace root it would build the root package (the headless agent), so
# the app is built with cargo and only bundled by the CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh --desktop
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release -p amove-desktop --bin amove-desktop
npx --yes @tauri-apps/cli@2.12.5 bundle --bundles deb
ls -l target/release/bundle/deb/*.deb
