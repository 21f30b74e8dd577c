#!/usr/bin/env bash
# Local inference: llama-server with SmolLM2-135M on an ephemeral port, and the pmm-inference
# proxy on 127.0.0.1:8000 in front of it (no auth in this local mode), until interrupted.
#
# Env: PMM_INFERENCE__LISTEN (default 127.0.0.1:8000), PMM_LLAMA_SLOTS (default 2),
# PMM_INFERENCE_PROFILE (cargo profile, default dev: the build the tests already made), PMM_LLAMA_SERVER / PMM_LLAMA_MODEL
# (skip the installer and use these).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

if [ -z "${PMM_LLAMA_SERVER:-}" ] || [ -z "${PMM_LLAMA_MODEL:-}" ]; then
  eval "$("$REPO_ROOT/scripts/llama/install.sh" | grep -E '^PMM_LLAMA_(SERVER|MODEL)=')"
fi
SLOTS="${PMM_LLAMA_SLOTS:-2}"
PROFILE="${PMM_INFERENCE_PROFILE:-dev}"
export PMM_INFERENCE__LISTEN="${PMM_INFERENCE__LISTEN:-127.0.0.1:8000}"

RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pmm-inference.XXXXXX")"
LLAMA_PID=""
PROXY_PID=""
cleanup() {
  trap - INT TERM EXIT
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  [ -n "$LLAMA_PID" ] && kill "$LLAMA_PID" 2>/dev/null && wait "$LLAMA_PID" 2>/dev/null
  rm -rf "$RUN_DIR"
}
trap cleanup INT TERM EXIT

echo "[inference] building pmm-inference ($PROFILE)" >&2
cargo build -q -p pmm-inference --profile "$PROFILE"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
PROFILE_DIR="$PROFILE"
[ "$PROFILE" = dev ] && PROFILE_DIR=debug
PROXY_BIN="$TARGET_DIR/$PROFILE_DIR/pmm-inference"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
echo "[inference] llama-server on 127.0.0.1:$PORT (log: $RUN_DIR/llama-server.log)" >&2
"$PMM_LLAMA_SERVER" -m "$PMM_LLAMA_MODEL" --host 127.0.0.1 --port "$PORT" \
  -c $((2048 * SLOTS)) -t 1 -np "$SLOTS" -a smollm2 --metrics --no-webui \
  >"$RUN_DIR/llama-server.log" 2>&1 &
LLAMA_PID=$!

LLAMA_READY=0
for _ in $(seq 1 300); do
  kill -0 "$LLAMA_PID" 2>/dev/null || { tail -20 "$RUN_DIR/llama-server.log" >&2; exit 1; }
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    LLAMA_READY=1
    break
  fi
  sleep 0.1
done
# Serving a proxy in front of a server that never loaded would only answer 503s.
if [ "$LLAMA_READY" != 1 ]; then
  echo "[inference] llama-server not healthy after 300 polls" >&2
  tail -20 "$RUN_DIR/llama-server.log" >&2
  exit 1
fi

cat >"$RUN_DIR/inference.toml" <<EOF
[auth]
disabled = true

[[upstreams]]
name = "llama-local"
url = "http://127.0.0.1:$PORT"
kind = "llamacpp"

[[models]]
name = "smollm2"
upstreams = ["llama-local"]
EOF

echo "[inference] proxy on http://$PMM_INFERENCE__LISTEN (OpenAI base: http://$PMM_INFERENCE__LISTEN/v1, model smollm2)" >&2
"$PROXY_BIN" --config "$RUN_DIR/inference.toml" &
PROXY_PID=$!
wait "$PROXY_PID"
