#!/usr/bin/env bash
# Set up and run truss for the local Docker, with the embedded state store (no etcd).
# Installs what the daemon calls (iproute2, nftables, iptables, nsenter) when missing,
# installs the pinned Node LTS and dependencies with `npm ci`, builds the daemon bundle
# (`npm run build`: dist/app/lib/truss.mjs, the same bundle the managed plugin ships; skipped
# when up to date), then runs `truss serve` from it in the foreground. Extra arguments go to
# `truss serve`. (bin/truss runs the same code from source, for development.)
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

npm run --silent build
# why: a control-plane daemon allocates little; V8's default young generation is resident memory
# for nothing (capping it saved 25-30 MiB at 1,000 endpoints: docs/benchmarks.md, Scale)
exec node_modules/node/bin/node --max-semi-space-size=4 dist/app/lib/truss.mjs serve "$@"
