#!/usr/bin/env bash
# The main job, locally: an anvil devnet with one DODO-like fixture pool of each type, the state
# migrations, the MCP hub, llama-server with SmolLM2 behind the inference proxy, a market that
# swaps and moves the feeds now and then, and the agent in observe mode over every devnet pool,
# printing one line per decision as it happens: pool, the model's proposal, the baseline, the
# verdict and its rule, the simulated shares.
#
# Usage: scripts/demo.sh [--once]
#   --once   one tick over every pool, then exit 0 (no market).
# Env: PMM_DEMO_INTERVAL_S (tick interval, default 10), PMM_DEMO_HUB_PORT (3000),
#      PMM_DEMO_INFERENCE_PORT (8000), PMM_DEMO_AGENT_PORT (3003), DATABASE_URL, REDIS_URL.
# Needs nothing but the package registries: scripts/bootstrap.sh installs the rest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pmm-target}
export PATH="$HOME/.cargo/bin:$PATH"
once=0
case "${1:-}" in
  --once) once=1 ;;
  "") ;;
  *) echo "usage: scripts/demo.sh [--once]" >&2; exit 2 ;;
esac
interval=${PMM_DEMO_INTERVAL_S:-10}
hub_port=${PMM_DEMO_HUB_PORT:-3000}
inference_port=${PMM_DEMO_INFERENCE_PORT:-8000}
agent_port=${PMM_DEMO_AGENT_PORT:-3003}

say() { printf '\n== %s\n' "$*"; }

# A port someone already serves on would have the demo talk to their server: refuse instead.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check_port() { # port, what, env var naming it
  if port_taken "$1"; then
    echo "demo: 127.0.0.1:$1 ($2) is already in use by another process;" \
      "stop it or pick another port with $3=<port>" >&2
    exit 1
  fi
}
check_ports() {
  check_port "$hub_port" hub PMM_DEMO_HUB_PORT
  check_port "$inference_port" "inference proxy" PMM_DEMO_INFERENCE_PORT
  check_port "$agent_port" "agent health" PMM_DEMO_AGENT_PORT
}
check_ports

scripts/bootstrap.sh

say "building the devnet and market tools, the hub, the migrator, the proxy and the agent"
cargo build -q -p pmm-testkit --bin pmm-devnet --bin pmm-market -p pmm-hub -p pmm-state \
  -p pmm-agent
# On its own, exactly as scripts/llama/inference-local.sh builds it: built together with the
# others its dependencies get other features, and the script's build would start over.
cargo build -q -p pmm-inference
bin="$CARGO_TARGET_DIR/debug"
eval "$(scripts/llama/install.sh | grep -E '^PMM_LLAMA_(SERVER|MODEL)=')"
export PMM_LLAMA_SERVER PMM_LLAMA_MODEL

pids=()
agent_pid=""
inference_pgid=""
cleanup() {
  trap - EXIT INT TERM HUP
  # The agent first: SIGTERM lets it finish its tick and release its leases.
  if [ -n "$agent_pid" ]; then
    kill -TERM "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  if [ -n "$inference_pgid" ]; then
    kill -TERM -- "-$inference_pgid" 2>/dev/null || true
    wait "$inference_pgid" 2>/dev/null || true
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

wait_for() { # what, pid, log, deadline seconds, command...
  local what=$1 pid=$2 log=$3 limit=$4 deadline=$((SECONDS + $4))
  shift 4
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "demo: $what exited before it was ready; the end of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "demo: $what not ready within ${limit} s (log: $log)" >&2
      exit 1
    fi
    sleep 0.3
  done
  # Ready, but maybe only because someone else answers on its port: it must still be ours.
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: $what exited; the end of $log:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
}

# Ctrl-C signals the terminal's whole foreground group. The services run in sessions of their
# own so that only this script and the agent get it: the agent then ends its tick and closes its
# MCP session while the hub still answers, and cleanup stops the rest in reverse order.
mkdir -p var
rm -f var/devnet.json var/allowlist.json
say "starting the devnet (log: var/devnet.log)"
setsid "$bin/pmm-devnet" --out var/devnet.json --allowlist-out var/allowlist.json >var/devnet.log 2>&1 &
pids+=($!)
wait_for "devnet" "${pids[-1]}" var/devnet.log 120 test -s var/allowlist.json

db=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pmm}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
say "migrating Postgres and bootstrapping Redis"
"$bin/pmm-state" --database-url "$db" --redis-url "$redis" migrate
"$bin/pmm-state" --database-url "$db" --redis-url "$redis" bootstrap

# The build took a while: someone may have taken a port meanwhile.
check_ports
say "starting the hub on 127.0.0.1:$hub_port, read-only (log: var/hub.log)"
PMM_CHAIN=devnet PMM_DEVNET_FILE=var/devnet.json PMM_ALLOWLIST_PATH=var/allowlist.json \
  PMM_AUTH=none PMM_LISTEN="127.0.0.1:$hub_port" PMM_REDIS_URL="$redis" PMM_DATABASE_URL="$db" \
  setsid "$bin/pmm-hub" >var/hub.log 2>&1 &
pids+=($!)
wait_for "hub" "${pids[-1]}" var/hub.log 60 curl -fsS "http://127.0.0.1:$hub_port/health"

say "starting llama-server (SmolLM2-135M) and the inference proxy on 127.0.0.1:$inference_port (log: var/inference.log)"
# Its own process group, stopped as a group: llama-server and the proxy go with the script.
PMM_INFERENCE__LISTEN="127.0.0.1:$inference_port" setsid scripts/llama/inference-local.sh \
  >var/inference.log 2>&1 &
inference_pgid=$!
wait_for "inference" "$inference_pgid" var/inference.log 120 \
  curl -fsS "http://127.0.0.1:$inference_port/health"

if [ "$once" = 0 ]; then
  say "starting the market: a swap or a feed move every few seconds (log: var/market.log)"
  setsid "$bin/pmm-market" --devnet var/devnet.json >var/market.log 2>&1 &
  pids+=($!)
fi

pools=$(python3 -c "import json; print(len(json.load(open('var/allowlist.json'))['pools']))")
agent_env=(
  PMM_HUB_URL="http://127.0.0.1:$hub_port"
  PMM_INFERENCE_URL="http://127.0.0.1:$inference_port"
  PMM_HEALTH_LISTEN="127.0.0.1:$agent_port"
  PMM_ALLOWLIST_PATH=var/allowlist.json
  PMM_PROFILES_PATH=config/pool_profiles.json
  PMM_DATABASE_URL="$db"
  PMM_TICK_INTERVAL_S="$interval"
  PMM_MAX_CONCURRENT_POOLS="$pools"
  PMM_MODE=observe
  RUST_LOG="${RUST_LOG:-warn}"
)
if [ "$once" = 1 ]; then
  say "agent: one tick over the $pools devnet pools (observe mode)"
  env "${agent_env[@]}" "$bin/pmm-agent" --once --print-decisions
  say "decisions recorded in Postgres"
  psql "$db" -c "select tick, pool, verdict, matched_rule, (latencies_ms->>'total')::int as ms \
    from agent_decisions order by decided_at desc limit $pools"
  exit 0
fi

say "agent in observe mode over $pools pools, a tick every $interval s (http://127.0.0.1:$agent_port/health, /metrics); Ctrl-C stops everything"
env "${agent_env[@]}" "$bin/pmm-agent" --print-decisions &
agent_pid=$!
wait "$agent_pid"
