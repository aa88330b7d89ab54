#!/usr/bin/env bash
# Installs what truss needs to run and to be tested (Debian packages), then npm where the host
# has none (Debian's nodejs and npm), the newest dockerd Debian offers (unstable's docker.io,
# unpacked into a private directory: the e2e suite runs against it too), Compose v2 (likewise),
# then the pinned Node and the npm dependencies (`npm ci`). Idempotent: apt is skipped when every
# package is already installed, the unstable packages when already unpacked, and `npm ci` when
# node_modules is newer than the lockfile (TRUSS_SETUP_FORCE=1 forces all).
set -euo pipefail
cd "$(dirname "$0")/.."

TRUSS_WHO=setup
# shellcheck source=lib/packages.sh
. scripts/lib/packages.sh
[ "$(id -u)" = 0 ] || TRUSS_SUDO=(sudo)

# The daemon's packages (scripts/lib/packages.sh), plus what the tests use:
# docker.io: the e2e suite's dockerd (never started as a service: truss_apt_install blocks service
# starts); busybox-static: the test image and netns helpers; psmisc, tcpdump: e2e checks;
# etcd-server: cluster tests (its etcd, configured by ETCD_* variables as its service is, in
# e2e/cluster-quickstart.e2e.ts); curl: etcd's health and JSON API in the e2e suite; etcd-client: etcdctl, run as `truss cluster rbac` prints (etcd-rbac.test.ts); wireguard-go: tested for real even where the kernel has WireGuard, and this release's (older) one measured beside the newest;
# binutils: strip for the plugin build (npm run package); docker-registry: the e2e suite's private
# registry; ethtool: the benchmarks record offloads; iperf3, sockperf: the benchmarks' traffic
# (copied into the test image); debootstrap: the fresh-root test (test/fresh-root.fresh.ts); zsh: the
# zsh completion is run by zsh (src/cli/conventions.test.ts); chromium: the /topology page loaded in a
# real headless browser (e2e/topology.e2e.ts), never at run time.
PACKAGES=("${TRUSS_DAEMON_PACKAGES[@]}" docker.io busybox-static psmisc tcpdump iperf3 sockperf ethtool
  etcd-server curl etcd-client wireguard-go binutils docker-registry debootstrap zsh chromium)

truss_ensure_packages "${PACKAGES[@]}"
# the newest wireguard-go (Debian unstable's) in truss's own directory, as scripts/prepare.sh puts
# it where the kernel has no WireGuard; the package wireguard-go above stays: the cluster
# benchmark compares both (bench/cluster.ts)
truss_ensure_wireguard_go
"${TRUSS_SUDO[@]}" bash scripts/lib/compose.sh # Compose v2 (Debian unstable) for e2e/compose.e2e.ts, in a private dir
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
  "${TRUSS_SUDO[@]}" bash scripts/lib/unstable.sh "$DOCKER_SID" "${SID_PACKAGES[@]}"
fi
echo "setup: $("$DOCKER_SID/usr/sbin/dockerd" --version) in $DOCKER_SID"

truss_npm_ci
