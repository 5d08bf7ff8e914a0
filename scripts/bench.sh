#!/usr/bin/env bash
# Builds the agent and the hello-world baseline in release mode and measures both in one run.
# Prints a Markdown table (the figures in BENCHMARKS.md come from it). The load runs alternate
# with the baseline's, BENCH_ROUNDS times (default 3), each BENCH_SECONDS long (default 5).
# Then the SAML measures next to BoxyHQ Jackson (bench/saml_bench.py, bench/jackson/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh --bench
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --bin amove-agent --example hello_baseline --example mint_session --example saml_bodies
cargo bench --no-run --bench sso
python3 bench/bench.py target/release
