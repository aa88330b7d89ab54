#!/usr/bin/env bash
# Installs what truss needs to run and to be tested (Debian packages), then the pinned Node and
# the npm dependencies. Idempotent: apt is skipped when every package is already installed, and
# `npm ci` when node_modules is newer than the lockfile (TRUSS_SETUP_FORCE=1 forces both).
set -euo pipefail
cd "$(dirname "$0")/.."

# binutils: strip for the plugin build (npm run package); docker-registry: the e2e suite's private registry;
# ethtool: the benchmarks record offloads; iperf3, sockperf: the benchmarks' traffic (copied into the test image)
PACKAGES=(docker.io nftables iptables busybox-static iproute2 procps psmisc conntrack tcpdump iperf3 sockperf ethtool kmod etcd-server wireguard-tools wireguard-go binutils docker-registry)

sudo_=()
[ "$(id -u)" = 0 ] || sudo_=(sudo)

missing=()
for p in "${PACKAGES[@]}"; do
  if [ "${TRUSS_SETUP_FORCE:-}" = 1 ] || ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qx 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # why: installing docker.io must not start the machine's own dockerd (it would take 172.17/16 and
  # the root netns); the tests start their own dockerd per simulated host. policy-rc.d 101 = "don't".
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_[@]}" tee "$policy" >/dev/null
    "${sudo_[@]}" chmod 0755 "$policy"
    trap '"${sudo_[@]}" rm -f "$policy"' EXIT
  fi
  "${sudo_[@]}" apt-get update -q
  "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present (${PACKAGES[*]})"
fi
"${sudo_[@]}" bash scripts/lib/compose.sh # Compose v2 (Debian unstable) for e2e/compose.e2e.ts, in a private dir

stamp=node_modules/.package-lock.json
if [ "${TRUSS_SETUP_FORCE:-}" = 1 ] || [ ! -x node_modules/node/bin/node ] || [ ! -e "$stamp" ] ||
  [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
else
  echo "setup: node_modules up to date with package-lock.json"
fi
