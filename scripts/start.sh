#!/usr/bin/env bash
# Installs what is needed, builds the agent, creates the bootstrap account on first run, and
# runs the agent on http://localhost:29123 until Ctrl-C.
#
#   AMOVE_ADMIN_PASSWORD='a long password' scripts/start.sh --account mycompany --admin you@mycompany.com
#
# Without AMOVE_ADMIN_PASSWORD the admin password is asked for (no echo). The data directory is
# the platform default (~/.local/share/amove-agent) unless AMOVE_AGENT_DATA_DIR is set.
set -euo pipefail
cd "$(dirname "$0")/.."

account=""; admin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --account) account="$2"; shift 2 ;;
    --admin) admin="$2"; shift 2 ;;
    *) echo "usage: $0 --account IDENT --admin EMAIL" >&2; exit 2 ;;
  esac
done

bash scripts/setup-debian.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --bin amove-agent
bin=target/release/amove-agent

if [ -n "$account" ] && [ -n "$admin" ]; then
  if "$bin" user list --account "$account" >/dev/null 2>&1; then
    echo "account '$account' exists; starting the agent"
  else
    "$bin" init --account "$account" --admin "$admin"
  fi
fi
exec "$bin" serve
