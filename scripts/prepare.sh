#!/usr/bin/env bash
# Prepares this host to run truss (scripts/run.sh runs it first; scripts/install.sh too).
# Idempotent, no arguments, as root. Each step is skipped when already done:
#   1. installs the Debian packages whose programs the daemon runs (scripts/lib/packages.sh:
#      iproute2, nftables, iptables, conntrack, wireguard-tools, util-linux, procps, kmod,
#      ca-certificates), apt-get update first; where the kernel has no WireGuard, the newest
#      wireguard-go Debian offers (unstable's) into /usr/local/lib/truss/wireguard-go (else this
#      release's package, with a warning);
#   2. where npm is absent, installs Debian's nodejs and npm, used only to run `npm ci`;
#   3. `npm ci` when node_modules is stale: it installs the pinned Node (the npm package `node`)
#      into node_modules/node/bin/node, which is what truss runs on;
#   4. builds the daemon bundle dist/app/lib/truss.mjs when a source is newer (packaging/bundle.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ]; then
  echo "prepare.sh: takes no arguments (got: $*)" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "prepare.sh: installs Debian packages and must run as root (sudo scripts/prepare.sh)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  echo "prepare.sh: needs apt-get and dpkg (Debian or Ubuntu); install the programs of" \
    "scripts/lib/packages.sh and Node (npm ci) by hand elsewhere" >&2
  exit 1
fi

# One prepare at a time per checkout: two at once (two scripts/run.sh started together) would run
# apt and `npm ci` in the same places at once and break node_modules; the second waits, then finds
# every step done.
exec 9>.prepare.lock
flock 9

TRUSS_WHO=prepare
# shellcheck source=lib/packages.sh
. scripts/lib/packages.sh

mapfile -t packages < <(truss_daemon_packages)
truss_ensure_packages "${packages[@]}"
# userspace WireGuard only where the kernel has none (or it cannot tell: a chroot, a container)
truss_kernel_has_wireguard || truss_ensure_wireguard_go
truss_npm_ci
# skips the build when the bundle is newer than every source (--force rebuilds)
node_modules/node/bin/node packaging/bundle.ts
