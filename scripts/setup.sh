#!/usr/bin/env bash
# Installs what truss needs to run and to be tested (Debian packages), the newest dockerd Debian
# offers (unstable's docker.io, unpacked into a private directory: the e2e suite runs against it
# too), then the pinned Node and the npm dependencies. Idempotent: apt is skipped when every
# package is already installed, the unstable dockerd when it is already unpacked, and `npm ci`
# when node_modules is newer than the lockfile (TRUSS_SETUP_FORCE=1 forces all three).
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

# The newest dockerd, for the e2e28 step (scripts/test.sh): unstable's docker.io and the tini it
# links docker-init to, unpacked with dpkg -x, never installed: the system keeps Debian 12's
# dockerd 20.10 (the e2e step). It runs containers with the system's containerd and runc.
# Outside the repo, in /var/cache: regenerable, ~80 MB, shared by every clone and worktree on
# the machine, and left alone by `git clean`. TRUSS_SETUP_FORCE=1 fetches unstable's newest again.
DOCKER_SID=${TRUSS_DOCKER_SID:-/var/cache/truss-test/docker-sid}
SID_PACKAGES=(docker.io tini-static)
if [ "${TRUSS_SETUP_FORCE:-}" = 1 ] || [ ! -x "$DOCKER_SID/usr/sbin/dockerd" ] ||
  [ "$(cut -d' ' -f1 "$DOCKER_SID/.packages" 2>/dev/null | tr '\n' ' ')" != "${SID_PACKAGES[*]} " ]; then
  echo "setup: unpacking Debian unstable's ${SID_PACKAGES[*]} into $DOCKER_SID"
  "${sudo_[@]}" bash scripts/lib/unstable.sh "$DOCKER_SID" "${SID_PACKAGES[@]}"
fi
echo "setup: $("$DOCKER_SID/usr/sbin/dockerd" --version) in $DOCKER_SID"

stamp=node_modules/.package-lock.json
if [ "${TRUSS_SETUP_FORCE:-}" = 1 ] || [ ! -x node_modules/node/bin/node ] || [ ! -e "$stamp" ] ||
  [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
else
  echo "setup: node_modules up to date with package-lock.json"
fi
