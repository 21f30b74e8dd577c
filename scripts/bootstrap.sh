#!/usr/bin/env bash
# Installs what the demo and the tests need, from the package registries only, and starts
# Postgres and Redis when they are not running. Idempotent: a second run only checks.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { printf '[bootstrap] %s\n' "$*"; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pmm-target}
export PATH="$HOME/.cargo/bin:$PATH"

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v just >/dev/null 2>&1; then
  log "installing just from crates.io"
  cargo install --locked --quiet just
fi

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || apt_install nodejs npm
done

# Pinned anvil, cast and solcjs from the committed lock file.
if [ ! -x tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] \
  || [ ! -f tools/npm/node_modules/solc/package.json ] \
  || [ tools/npm/package-lock.json -nt tools/npm/node_modules/.package-lock.json ]; then
  log "installing pinned npm tools (anvil, cast, solc)"
  (cd tools/npm && npm ci --no-fund --no-audit --loglevel=error)
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  log "installing postgresql"
  apt_install postgresql
fi
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis"
  apt_install redis-server
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting postgres"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

deadline=$((SECONDS + 60))
until pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "postgres or redis did not become ready within 60 s" >&2
    exit 1
  fi
  sleep 0.5
done

# The local stack's own database, so the demo and `just hub` never write into `postgres`.
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname = 'pmm'" | grep -q 1; then
  log "creating the local database pmm"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "create database pmm"
fi

scripts/python/install.sh

if [ -x scripts/llama/install.sh ] && [ "${PMM_SKIP_LLAMA:-0}" != 1 ]; then
  scripts/llama/install.sh
fi
log "ready"
