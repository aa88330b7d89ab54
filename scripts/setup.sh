#!/usr/bin/env bash
# Installs what truss needs to run and to be tested (Debian packages), then npm where the host
# has none (Debian's nodejs and npm), then the pinned Node and the npm dependencies (`npm ci`).
# Idempotent: apt is skipped when every package is already installed, and `npm ci` when
# node_modules is newer than the lockfile (TRUSS_SETUP_FORCE=1 forces both).
set -euo pipefail
cd "$(dirname "$0")/.."

TRUSS_WHO=setup
# shellcheck source=lib/packages.sh
. scripts/lib/packages.sh
[ "$(id -u)" = 0 ] || TRUSS_SUDO=(sudo)

# The daemon's packages (scripts/lib/packages.sh), plus what the tests use:
# docker.io: the e2e suite's dockerd (never started as a service: truss_apt_install blocks service
# starts); busybox-static: the test image and netns helpers; psmisc, tcpdump: e2e checks;
# etcd-server: cluster tests; wireguard-go: tested for real even where the kernel has WireGuard;
# binutils: strip for the plugin build (npm run package); docker-registry: the e2e suite's private
# registry; ethtool: the benchmarks record offloads; iperf3, sockperf: the benchmarks' traffic
# (copied into the test image); debootstrap: the fresh-root test (test/fresh-root.fresh.ts).
PACKAGES=("${TRUSS_DAEMON_PACKAGES[@]}" docker.io busybox-static psmisc tcpdump iperf3 sockperf ethtool
  etcd-server wireguard-go binutils docker-registry debootstrap)

truss_ensure_packages "${PACKAGES[@]}"
"${TRUSS_SUDO[@]}" bash scripts/lib/compose.sh # Compose v2 (Debian unstable) for e2e/compose.e2e.ts, in a private dir
truss_npm_ci
