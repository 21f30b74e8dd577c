#!/usr/bin/env bash
# Builds one daemon in release mode and installs it with its systemd unit on its VM.
# Usage: scripts/deploy.sh 5701|5702|5703|5704   (target host from PMM_HOST_<vm>, e.g. PMM_HOST_5701)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vm=${1:?usage: scripts/deploy.sh 5701|5702|5703|5704}
case "$vm" in
  5701) bin=pmm-hub; units=(pmm-hub) ;;
  5702) bin=pmm-inference; units=(pmm-llama pmm-inference) ;;
  5703) bin=pmm-agent; units=(pmm-agent) ;;
  5704) bin=pmm-state; units=(pmm-state) ;;
  *) echo "unknown VM '$vm': expected 5701, 5702, 5703 or 5704" >&2; exit 2 ;;
esac
host_var="PMM_HOST_$vm"
host=${!host_var:?set $host_var to the ssh destination of VM $vm}
target=${CARGO_TARGET_DIR:-/var/tmp/pmm-target}

cargo build --release --locked -p "$bin" --manifest-path "$root/Cargo.toml"
scp "$target/release/$bin" "$host:/tmp/$bin"
for unit in "${units[@]}"; do
  scp "$root/deploy/systemd/$unit.service" "$host:/tmp/$unit.service"
done
# shellcheck disable=SC2029 # the remote command is built here on purpose
ssh "$host" "sudo install -m 0755 /tmp/$bin /usr/local/bin/$bin \
  && for u in ${units[*]}; do sudo install -m 0644 /tmp/\$u.service /etc/systemd/system/\$u.service; done \
  && sudo systemctl daemon-reload \
  && sudo systemctl enable --now ${units[*]/%/.service} \
  && sudo systemctl restart ${units[*]/%/.service}"
