#!/usr/bin/env bash
# Installs LiteLLM's proxy, pinned, into its own venv outside the clone: the proxy-overhead
# benchmark's third column (crates/pmm-inference/benches/proxy_overhead.rs). Kept apart from the
# tests' venv because it pulls in a few hundred MB the tests never use. Idempotent.
#
# Env: PMM_LITELLM_VENV (default /var/tmp/pmm-litellm), PYTHON (default python3, 3.9 or newer).
# Prints the PMM_LITELLM the bench reads.
set -euo pipefail
# Newer releases' [proxy] extra needs litellm-proxy-extras versions the registry does not have;
# 1.107.0 was a compromised release.
VERSION=1.106.12
VENV="${PMM_LITELLM_VENV:-/var/tmp/pmm-litellm}"
PYTHON="${PYTHON:-python3}"

log() { printf '[litellm-install] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

installed() {
  [ -x "$VENV/bin/litellm" ] &&
    [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" = "$VERSION" ]
}

if ! installed; then
  command -v "$PYTHON" >/dev/null || die "no $PYTHON on PATH (set PYTHON)"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "$PYTHON is $("$PYTHON" -V 2>&1); litellm $VERSION needs 3.9 or newer"
  # A venv left without pip (python3-venv missing, or an interrupted run) is rebuilt, not reused.
  if [ ! -x "$VENV/bin/pip" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv --clear "$VENV" ||
      die "cannot create a venv with $PYTHON (Debian/Ubuntu: apt-get install python3-venv)"
  fi
  log "installing litellm[proxy]==$VERSION"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$VERSION"
  # The proxy's own imports (the [proxy] extra), offline as the bench runs it: a broken install
  # fails here rather than at the bench.
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_TELEMETRY=False \
    "$VENV/bin/python" -c 'import litellm.proxy.proxy_server' >/dev/null ||
    die "litellm[proxy]==$VERSION installed but its proxy does not import"
  installed || die "litellm $VERSION not found in $VENV after the install"
fi
echo "export PMM_LITELLM=$VENV/bin/litellm"
