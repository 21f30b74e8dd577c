#!/usr/bin/env bash
# Installs LiteLLM's proxy, pinned, into its own venv outside the clone: the proxy-overhead
# benchmark's third column (crates/pmm-inference/benches/proxy_overhead.rs). Kept apart from the
# tests' venv because it pulls in a few hundred MB the tests never use. Idempotent.
#
# Env: PMM_LITELLM_VENV (default /var/tmp/pmm-litellm). Prints the PMM_LITELLM the bench reads.
set -euo pipefail
# Newer releases' [proxy] extra needs litellm-proxy-extras versions the registry does not have;
# 1.107.0 was a compromised release.
VERSION=1.106.12
VENV="${PMM_LITELLM_VENV:-/var/tmp/pmm-litellm}"

log() { printf '[litellm-install] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/litellm" ] || [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null)" != "$VERSION" ]; then
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; python3 -m venv "$VENV"; }
  log "installing litellm[proxy]==$VERSION"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$VERSION"
fi
echo "export PMM_LITELLM=$VENV/bin/litellm"
