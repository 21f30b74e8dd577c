#!/usr/bin/env bash
# The main job, locally: an anvil devnet with one DODO-like fixture pool of each type, the
# state migrations, and the MCP hub on 127.0.0.1:3000 in front of them; then a walk through the
# read tools an agent uses on one tick (identify, state, risk, quote, simulate).
#
# Usage: scripts/demo.sh [--once]
#   --once   exit after the walk-through instead of serving until Ctrl-C.
# Needs nothing but the package registries: scripts/bootstrap.sh installs the rest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pmm-target}
export PATH="$HOME/.cargo/bin:$PATH"
once=0
[ "${1:-}" = "--once" ] && once=1

PMM_SKIP_LLAMA=1 scripts/bootstrap.sh
say() { printf '\n== %s\n' "$*"; }

say "building the devnet tool, the hub and the migrator"
cargo build -q -p pmm-testkit --bin pmm-devnet -p pmm-hub -p pmm-state
bin="$CARGO_TARGET_DIR/debug"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_for() { # what, deadline seconds, command...
  local what=$1 limit=$2 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$what not ready within ${limit} s" >&2
      exit 1
    fi
    sleep 0.3
  done
}

mkdir -p var
rm -f var/devnet.json var/allowlist.json
say "starting the devnet (log: var/devnet.log)"
"$bin/pmm-devnet" --out var/devnet.json --allowlist-out var/allowlist.json >var/devnet.log 2>&1 &
pids+=($!)
wait_for "devnet" 120 test -s var/allowlist.json

db=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pmm}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
say "migrating Postgres and bootstrapping Redis"
"$bin/pmm-state" --database-url "$db" --redis-url "$redis" migrate
"$bin/pmm-state" --database-url "$db" --redis-url "$redis" bootstrap

say "starting the hub on 127.0.0.1:3000, read-only (log: var/hub.log)"
PMM_CHAIN=devnet PMM_DEVNET_FILE=var/devnet.json PMM_ALLOWLIST_PATH=var/allowlist.json \
  PMM_AUTH=none PMM_LISTEN=127.0.0.1:3000 PMM_REDIS_URL="$redis" PMM_DATABASE_URL="$db" \
  "$bin/pmm-hub" >var/hub.log 2>&1 &
pids+=($!)
wait_for "hub" 60 curl -fsS http://127.0.0.1:3000/health

call() { # tool, params-json
  curl -sS http://127.0.0.1:3000/mcp/call -H 'content-type: application/json' \
    -d "{\"tool\":\"$1\",\"params\":$2}"
}
pool() { python3 -c "import json,sys; print([p['address'] for p in json.load(open('var/devnet.json'))['pools'] if p['pool_type']==sys.argv[1]][0])" "$1"; }
show() { python3 -c "
import json, sys
body = json.load(sys.stdin)
r = body.get('result', body)
keys = sys.argv[1:]
print(json.dumps({k: r[k] for k in keys if k in r} if keys else r, indent=2))" "$@"; }

dvm=$(pool dvm)
dsp=$(pool dsp)
say "GET /health"
curl -sS http://127.0.0.1:3000/health | show status chain redis postgres
say "dodo.identify_pool_interface on every devnet pool"
for type in dvm dsp gsp dpp dpp_oracle v1; do
  printf '%-11s ' "$type"
  call dodo.identify_pool_interface "{\"pool\":\"$(pool "$type")\"}" |
    python3 -c "import json,sys; r=json.load(sys.stdin)['result']; print(r['detected_profile'], r['version'])"
done
say "dodo.get_pool_state (DVM)"
call dodo.get_pool_state "{\"pool\":\"$dvm\"}" | show pool_type mid_price oracle_price inventory_ratio liquidity_base liquidity_quote pmm
say "dodo.risk_check (DVM, no action)"
call dodo.risk_check "{\"pool\":\"$dvm\"}" | show verdict score decided_by
say "dodo.quote_add_liquidity (DSP, 1000 STB + 1000 USDC)"
call dodo.quote_add_liquidity "{\"pool\":\"$dsp\",\"base_amount\":\"1000000000000000000000\",\"quote_amount\":\"1000000000\"}" | show
say "dodo.simulate_action (DSP add_liquidity, min_shares 0: the slippage rule denies it)"
call dodo.simulate_action "{\"action\":{\"action\":\"add_liquidity\",\"pool\":\"$dsp\",\"base_amount\":\"1000000000000000000000\",\"quote_amount\":\"1000000000\",\"min_shares\":\"0\",\"reason\":\"demo\"}}" | show verdict denied_by predicted
say "tool calls recorded in Postgres"
wait_for "tool-call log" 20 bash -c "[ \"\$(psql '$db' -tAc 'select count(*) from tool_calls')\" -gt 0 ]"
psql "$db" -c "select called_at, caller, tool, verdict, matched_rule, latency_ms from tool_calls order by called_at desc limit 8"

if [ "$once" = 1 ]; then
  say "done"
  exit 0
fi
say "stack running: hub http://127.0.0.1:3000 (MCP at /mcp), devnet $(python3 -c "import json; print(json.load(open('var/devnet.json'))['rpc_url'])"); Ctrl-C stops it"
wait
