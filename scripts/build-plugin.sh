#!/usr/bin/env bash
# Builds the Docker managed plugin on a Debian/Ubuntu host that may have nothing but apt:
# scripts/prepare.sh (the daemon's Debian packages, npm where absent, npm ci, the bundle), then
# what only the plugin's rootfs needs (binutils for strip; the newest wireguard-go Debian offers,
# which the rootfs always carries, even where this host's kernel has WireGuard or its release an
# older one: scripts/lib/packages.sh truss_ensure_wireguard_go), then packaging/plugin/build.ts:
#   dist/plugin/ (config.json + rootfs/, for `docker plugin create`) and
#   dist/truss-plugin-VERSION.tar.gz. Arguments go to build.ts (e.g. --version V).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "build-plugin.sh: installs Debian packages and must run as root (sudo scripts/build-plugin.sh)" >&2
  exit 1
fi
bash scripts/prepare.sh
TRUSS_WHO=build-plugin
# shellcheck source=lib/packages.sh
. scripts/lib/packages.sh
truss_ensure_packages binutils
truss_ensure_wireguard_go # the rootfs carries the newest, whatever this host's release and kernel
exec node_modules/node/bin/node packaging/plugin/build.ts "$@"
