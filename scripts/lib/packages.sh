# shellcheck shell=bash
# The one list of the Debian packages whose programs the truss daemon runs, and the shared steps
# of scripts/prepare.sh (running truss) and scripts/setup.sh (testing it): installing missing
# Debian packages, bringing npm when the host has none, `npm ci` when node_modules is stale.
# Sourced, not run; the caller has `set -euo pipefail` and its cwd at the repository root.

# Every program the daemon can run, for any feature (src/dataplane/linux: exec.run / exec.which):
#   iproute2         ip, tc, bridge (links, addresses, routes, rules, shaping, FDB)
#   nftables         nft (policy, NAT, guards)
#   iptables         iptables, ip6tables, *-restore (the FORWARD shim where Docker's iptables sets DROP)
#   conntrack        conntrack (flushes stale flows when a policy, e.g. -o truss.ingress=..., changes)
#   wireguard-tools  wg (cluster mode: WireGuard keys and peers)
#   util-linux       setsid (starts wireguard-go), nsenter
#   procps           sysctl
#   kmod             modprobe: the kernel loads nf_tables, vxlan, wireguard... modules through it
#   ca-certificates  the system's CA bundle, for an etcd or registry CA (NODE_EXTRA_CA_CERTS)
# plus wireguard-go (userspace WireGuard) where the kernel has no WireGuard: Debian unstable's, the
# newest, into truss's own directory (truss_ensure_wireguard_go), else this release's package.
TRUSS_DAEMON_PACKAGES=(iproute2 nftables iptables conntrack wireguard-tools util-linux procps kmod ca-certificates)

# truss's own wireguard-go: DIR/usr/bin/wireguard-go, where the daemon looks first
# (src/dataplane/linux/wireguard-go.ts TRUSS_WIREGUARD_GO); never over the system's /usr/bin/wireguard-go.
TRUSS_WIREGUARD_GO_DIR=/usr/local/lib/truss/wireguard-go
# how old (days) truss's own wireguard-go may get before a run asks Debian's mirror for a newer one
TRUSS_WIREGUARD_GO_DAYS=7

# Where npm is absent, Debian's nodejs and npm: used only to run `npm ci`, which installs the
# pinned Node (npm package `node`, package.json) into node_modules; truss never runs on them.
TRUSS_NPM_PACKAGES=(nodejs npm)

# Commands that need root are prefixed with this (scripts/setup.sh sets (sudo) for a non-root user).
TRUSS_SUDO=()
truss_apt_updated=0

# Does the running kernel have WireGuard (built in, loaded, or a module modprobe can load)?
# Exit 0 yes, 1 no or unknown (no /lib/modules for this kernel, e.g. in a container or chroot).
truss_kernel_has_wireguard() {
  [ -d /sys/module/wireguard ] && return 0
  command -v modprobe >/dev/null 2>&1 && modprobe -n -q wireguard 2>/dev/null
}

# The daemon's packages for this host: the list above (wireguard-go: truss_ensure_wireguard_go).
truss_daemon_packages() {
  printf '%s\n' "${TRUSS_DAEMON_PACKAGES[@]}"
}

# Prints those of the given packages that are not installed (all of them with TRUSS_SETUP_FORCE=1).
truss_missing_packages() {
  local p
  for p in "$@"; do
    if [ "${TRUSS_SETUP_FORCE:-}" = 1 ] ||
      ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qx 'install ok installed'; then
      echo "$p"
    fi
  done
}

# apt-get install (after one apt-get update), with service starts blocked: a package such as
# docker.io must not start the machine's own daemon (policy-rc.d exit 101 = "don't").
truss_apt_install() {
  [ $# -gt 0 ] || return 0
  local policy=/usr/sbin/policy-rc.d made=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${TRUSS_SUDO[@]}" tee "$policy" >/dev/null
    "${TRUSS_SUDO[@]}" chmod 0755 "$policy"
    made=1
  fi
  if [ "$truss_apt_updated" = 0 ]; then
    "${TRUSS_SUDO[@]}" apt-get update -q || rc=$?
    [ "$rc" != 0 ] || truss_apt_updated=1
  fi
  if [ "$rc" = 0 ]; then
    "${TRUSS_SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends "$@" || rc=$?
  fi
  [ "$made" = 0 ] || "${TRUSS_SUDO[@]}" rm -f "$policy"
  if [ "$rc" != 0 ]; then
    echo "$TRUSS_WHO: apt-get could not install $* (exit $rc): see apt's message above" >&2
  fi
  return "$rc"
}

# Installs those of the given packages that are missing; $TRUSS_WHO names the caller in messages.
truss_ensure_packages() {
  local missing
  mapfile -t missing < <(truss_missing_packages "$@")
  if [ ${#missing[@]} -eq 0 ]; then
    echo "$TRUSS_WHO: Debian packages present ($*)" >&2
    return 0
  fi
  echo "$TRUSS_WHO: installing ${missing[*]}" >&2
  truss_apt_install "${missing[@]}"
}

# npm runs only `npm ci`; where it is absent, Debian's nodejs and npm bring it.
truss_ensure_npm() {
  command -v npm >/dev/null 2>&1 && return 0
  echo "$TRUSS_WHO: npm not found: installing Debian's ${TRUSS_NPM_PACKAGES[*]} to run npm ci" \
    "(which installs the pinned Node into node_modules)" >&2
  truss_apt_install "${TRUSS_NPM_PACKAGES[@]}"
  if ! command -v npm >/dev/null 2>&1; then
    echo "$TRUSS_WHO: npm still not found after installing ${TRUSS_NPM_PACKAGES[*]}" >&2
    return 1
  fi
}

# `npm ci` when node_modules lacks the pinned Node or is older than package.json or the lockfile.
truss_npm_ci() {
  local stamp=node_modules/.package-lock.json
  if [ "${TRUSS_SETUP_FORCE:-}" = 1 ] || [ ! -x node_modules/node/bin/node ] || [ ! -e "$stamp" ] ||
    [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
    truss_ensure_npm
    echo "$TRUSS_WHO: npm ci" >&2
    npm ci --no-audit --no-fund
    if [ ! -x node_modules/node/bin/node ]; then
      echo "$TRUSS_WHO: npm ci did not install the pinned Node (node_modules/node/bin/node):" \
        "the npm package 'node' runs an install script, which must not be disabled (ignore-scripts)" >&2
      return 1
    fi
  else
    echo "$TRUSS_WHO: node_modules up to date with package-lock.json" >&2
  fi
}

# The newest wireguard-go Debian offers, in truss's own directory: unstable's package (a static Go
# binary that runs on any release; with GSO/GRO ~4x the throughput of Debian 12's 0.0.20220316 here,
# docs/cluster.md), fetched by scripts/lib/unstable.sh (private apt lists and cache: the system's
# apt state is untouched; apt checks the Release signature against the system's keyring and each
# .deb against its signed hash). Skipped while the unpacked one is under TRUSS_WIREGUARD_GO_DAYS
# old (TRUSS_SETUP_FORCE=1 asks again). When the mirror cannot be reached: the one unpacked
# before, else this release's package wireguard-go with a warning; never a failure (it is only
# needed for encrypted cluster networks, and the daemon says which one it runs).
truss_ensure_wireguard_go() {
  local dir=$TRUSS_WIREGUARD_GO_DIR bin=$TRUSS_WIREGUARD_GO_DIR/usr/bin/wireguard-go
  if [ "${TRUSS_SETUP_FORCE:-}" != 1 ] && [ -x "$bin" ] &&
    [ -n "$(find "$dir/.packages" -mtime "-$TRUSS_WIREGUARD_GO_DAYS" 2>/dev/null)" ]; then
    echo "$TRUSS_WHO: $("$bin" --version | head -1) present in $dir" >&2
    return 0
  fi
  echo "$TRUSS_WHO: fetching the newest wireguard-go Debian offers (unstable's) into $dir" >&2
  if "${TRUSS_SUDO[@]}" bash scripts/lib/unstable.sh "$dir" wireguard-go >&2 && "$bin" --version >/dev/null; then
    "${TRUSS_SUDO[@]}" touch "$dir/.packages"
    echo "$TRUSS_WHO: $("$bin" --version | head -1) in $dir" >&2
    return 0
  fi
  if [ -x "$bin" ]; then
    echo "$TRUSS_WHO: warning: Debian unstable's wireguard-go could not be fetched; keeping" \
      "$("$bin" --version | head -1) in $dir" >&2
    return 0
  fi
  echo "$TRUSS_WHO: warning: Debian unstable's wireguard-go could not be fetched (mirror unreachable?):" \
    "installing this release's package wireguard-go instead, which may be several times slower" \
    "(docs/cluster.md, Which WireGuard runs)" >&2
  truss_ensure_packages wireguard-go || echo "$TRUSS_WHO: warning: no wireguard-go: encrypted cluster" \
    "networks need kernel WireGuard on this host" >&2
}
