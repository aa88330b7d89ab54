#!/usr/bin/env bash
# Set up and run truss for the local Docker, with the embedded state store (no etcd).
# Installs what the daemon calls (iproute2, nftables, iptables, nsenter) when missing,
# installs the pinned Node LTS and dependencies with `npm ci`, then runs
# `bin/truss serve` in the foreground. Extra arguments go to `truss serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: truss programs the kernel and must run as root" >&2
  exit 1
fi

missing=()
for pair in ip:iproute2 nft:nftables iptables-restore:iptables nsenter:util-linux sysctl:procps; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: installing ${missing[*]}" >&2
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

stamp=node_modules/.package-lock.json
if [ ! -x node_modules/node/bin/node ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund
fi

exec bin/truss serve "$@"
