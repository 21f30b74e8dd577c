#!/usr/bin/env bash
# The one command that runs every check: installs what is missing, starts the stores, then runs
# the workspace tests, clippy, rustfmt and the fixture-artifact staleness check (`just check`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/pmm-target}
export PATH="$HOME/.cargo/bin:$PATH"
scripts/bootstrap.sh
exec just check
