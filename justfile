# Recipes for the PMM agent stack. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", "/var/tmp/pmm-target")
export PATH := justfile_directory() + "/tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin:" + justfile_directory() + "/tools/npm/node_modules/@foundry-rs/cast-linux-amd64/bin:" + env_var("PATH")

# Show the recipes.
default:
    @just --list

# Every check CI runs: tests, clippy, rustfmt, fixture artifacts.
check: artifacts-check fmt-check lint test

# The differential test runs uncaptured so its `pmm differential: N cases, M mismatches` line
# shows in every run.
# All workspace tests (needs Postgres, Redis, anvil, llama-server: scripts/bootstrap.sh).
test:
    cargo test --workspace --exclude pmm-workspace-tests --no-fail-fast
    cargo test -p pmm-workspace-tests -- --nocapture

# Clippy over every target, warnings are errors.
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Formatting check.
fmt-check:
    cargo fmt --all --check

# Fail when the committed Solidity artifacts are stale.
artifacts-check:
    node tests/fixtures/build.js --check

# Recompile the Solidity fixtures into tests/fixtures/artifacts.
artifacts:
    node tests/fixtures/build.js

# Writes var/devnet.json and var/allowlist.json (the pools with demo limits).
# An anvil devnet with one fixture pool of each type, until Ctrl-C.
devnet *ARGS:
    cargo run -q -p pmm-testkit --bin pmm-devnet -- --out var/devnet.json --allowlist-out var/allowlist.json {{ARGS}}

# The main job: devnet, state, hub, inference, market and the agent printing its decisions.
demo *ARGS:
    scripts/demo.sh {{ARGS}}

# No tokens (agent role); uses Redis and Postgres when reachable. Signs with the keystore
# `just devnet` wrote; writes stay refused unless ALLOW_WRITE=true EXECUTION_ARMED=true.
# The MCP hub on 127.0.0.1:3000 against `just devnet` (read-only unless both gates are open).
hub:
    PMM_CHAIN=devnet PMM_DEVNET_FILE=var/devnet.json PMM_ALLOWLIST_PATH=var/allowlist.json \
    PMM_KEYSTORE_PATH=var/keystore.json PMM_KEYSTORE_PASSWORD_FILE=var/keystore.pass \
    PMM_AUTH=none PMM_LISTEN=127.0.0.1:3000 \
    PMM_REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" \
    PMM_DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pmm}" \
    cargo run -q -p pmm-hub

# llama-server (SmolLM2) and the inference proxy on 127.0.0.1:8000, no auth, until Ctrl-C.
inference:
    scripts/llama/inference-local.sh

# Swaps and feed moves against `just devnet` every few seconds, until Ctrl-C.
market *ARGS:
    cargo run -q -p pmm-testkit --bin pmm-market -- --devnet var/devnet.json {{ARGS}}

# Needs `just devnet`, `just hub` and `just inference`; prints one line per decision.
# The agent worker (5703) in observe mode over the devnet pools, until Ctrl-C.
agent *ARGS:
    PMM_ALLOWLIST_PATH=var/allowlist.json PMM_PROFILES_PATH=config/pool_profiles.json \
    PMM_DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pmm}" \
    PMM_TICK_INTERVAL_S="${PMM_TICK_INTERVAL_S:-10}" PMM_MODE=observe \
    cargo run -q -p pmm-agent -- --print-decisions {{ARGS}}

# Apply migrations and bootstrap Redis (DATABASE_URL / REDIS_URL, local defaults).
state:
    cargo run -q -p pmm-state -- --database-url "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pmm}" --redis-url "${REDIS_URL:-redis://127.0.0.1:6379}" migrate
    cargo run -q -p pmm-state -- --database-url "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pmm}" --redis-url "${REDIS_URL:-redis://127.0.0.1:6379}" bootstrap

# Every benchmark: each prints its ratio against a baseline measured in the same run.
bench:
    cargo bench -p pmm-store --bench tool_calls_insert
    cargo bench -p pmm-hub --bench get_pool_state
    cargo bench -p pmm-hub --bench mcp_load
    cargo bench -p pmm-inference --bench proxy_overhead

# Deploy the MCP hub to VM 5701 (ssh destination in PMM_HOST_5701).
deploy-5701:
    scripts/deploy.sh 5701

# Deploy the inference proxy and llama-server to VM 5702 (PMM_HOST_5702).
deploy-5702:
    scripts/deploy.sh 5702

# Deploy the agent worker to VM 5703 (PMM_HOST_5703).
deploy-5703:
    scripts/deploy.sh 5703

# Deploy the migrator to VM 5704 and run it (PMM_HOST_5704).
deploy-5704:
    scripts/deploy.sh 5704
