#!/usr/bin/env bash
# Builds the agent and the hello-world baseline in release mode and measures both in one run.
# Prints a Markdown table (the figures in BENCHMARKS.md come from it). BENCH_SECONDS sets the
# length of each load run (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh --bench
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --bin amove-agent --example hello_baseline --example mint_session
cargo bench --no-run --bench sso
python3 bench/bench.py target/release
