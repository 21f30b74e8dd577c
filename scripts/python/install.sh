#!/usr/bin/env bash
# Installs the Python clients the tests use (tools/python/requirements.txt) into one venv outside
# the clone, so a fresh clone on the same machine reuses it. Idempotent: reinstalls only when the
# requirements file changed since the last install.
#
# Env: PMM_VENV (default /var/tmp/pmm-venv). Tests find the interpreter at $PMM_VENV/bin/python.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV="${PMM_VENV:-/var/tmp/pmm-venv}"
REQ="$root/tools/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"

log() { printf '[python-install] %s\n' "$*" >&2; }

want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
if grep -qvE '^\s*(#|$)' "$REQ"; then
  log "installing $(grep -cvE '^\s*(#|$)' "$REQ") pinned packages"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
fi
echo "$want" > "$STAMP"
