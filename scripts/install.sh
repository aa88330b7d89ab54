#!/usr/bin/env bash
# Installs truss on this host (docs/install.md). As root, from a checkout:
#
#   scripts/install.sh              the daemon as the systemd service truss.service, and the `truss` CLI
#   scripts/install.sh --cli        only the `truss` CLI, and /var/lib/truss if absent (with the managed
#                                   plugin: its state dir, where `truss status` reaches its admin socket)
#   scripts/install.sh --rollback   back to the version installed before (and restart the service)
#   scripts/install.sh --uninstall  stop and remove what this script installed; the state stays
#
# Steps: scripts/prepare.sh (Debian packages, Node, npm ci, npm run build), then the bundle and
# the pinned Node into /usr/local/lib/truss/versions/<version>-<hash>, switched to atomically
# with the symlink /usr/local/lib/truss/current (the one before stays as `previous`, for
# --rollback; older ones are removed), the wrapper /usr/local/bin/truss, the unit
# /etc/systemd/system/truss.service and, only if absent, /etc/default/truss; then
# `systemctl daemon-reload`, `enable truss`, `restart truss` when systemd runs this host.
# Running it again changes nothing when nothing changed (same <hash>: it only restarts truss).
#
# Environment, for tests: TRUSS_INSTALL_ROOT=/tmp/x puts every path under /tmp/x (no root
# needed, systemctl never called); TRUSS_INSTALL_SKIP_PREPARE=1 uses dist/app as it is.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${TRUSS_INSTALL_ROOT:-}
LIB_PATH=/usr/local/lib/truss
LIB=$ROOT$LIB_PATH
BIN=$ROOT/usr/local/bin/truss
UNIT=$ROOT/etc/systemd/system/truss.service
ENV_FILE=$ROOT/etc/default/truss
ENV_TEMPLATE=$REPO/packaging/systemd/truss.env
WRAPPER_MARK='installed by truss scripts/install.sh'

say() { echo "install.sh: $*"; }
die() {
  echo "install.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

mode=service
case "${1:-}" in
  '') ;;
  --cli) mode=cli ;;
  --uninstall) mode=uninstall ;;
  --rollback) mode=rollback ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) die "unknown argument '$1' (expected --cli, --rollback, --uninstall or nothing; --help)" ;;
esac
[ $# -le 1 ] || die "one argument at most, got: $*"

if [ -n "$ROOT" ]; then
  case "$ROOT" in /*) ;; *) die "TRUSS_INSTALL_ROOT=$ROOT: expected an absolute path" ;; esac
elif [ "$(id -u)" != 0 ]; then
  die "run as root: it installs into /usr/local and /etc and manages truss.service"
fi

# systemd runs this host (sd_booted), and this is not a test install
systemd_runs() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# Writes stdin to $1 with mode $2, atomically (a reader sees the old file or the new one).
write_file() {
  mkdir -p "$(dirname "$1")"
  local tmp="$1.tmp.$$"
  cat >"$tmp"
  chmod "$2" "$tmp"
  mv -f "$tmp" "$1"
}

# Points the symlink $LIB/$1 at $2 (relative), atomically.
set_link() {
  ln -sfn "$2" "$LIB/.$1.new"
  mv -T "$LIB/.$1.new" "$LIB/$1"
}

# Installs the bundle and the pinned Node as a version dir and switches `current` to it.
install_version() {
  if [ "${TRUSS_INSTALL_SKIP_PREPARE:-}" != 1 ]; then
    bash "$REPO/scripts/prepare.sh"
  fi
  local node=$REPO/node_modules/node/bin/node app=$REPO/dist/app
  [ -x "$node" ] || die "$node not found: scripts/prepare.sh (npm ci) did not install Node"
  [ -f "$app/lib/truss.mjs" ] || die "$app/lib/truss.mjs not found: scripts/prepare.sh (npm run build) did not build it"
  local version hash id
  version=$("$node" "$app/lib/truss.mjs" version)
  hash=$(cat "$node" "$app/lib/truss.mjs" "$app"/proto/* "$REPO/packaging/systemd/wait-ready.ts" | sha256sum | cut -c1-12)
  id=$version-$hash
  if [ ! -d "$LIB/versions/$id" ]; then
    local tmp=$LIB/versions/.$id.tmp.$$
    rm -rf "$tmp"
    mkdir -p "$tmp/bin" "$tmp/app" "$tmp/lib" "$tmp/docs"
    cp "$node" "$tmp/bin/node"
    cp -R "$app/lib" "$app/proto" "$tmp/app/"
    cp "$REPO/packaging/systemd/wait-ready.ts" "$tmp/lib/"
    cp "$REPO/docs/install.md" "$tmp/docs/"
    echo "$id" >"$tmp/VERSION"
    chmod -R u=rwX,go=rX "$tmp"
    mv -T "$tmp" "$LIB/versions/$id"
    say "installed $LIB/versions/$id"
  fi
  local cur
  cur=$(readlink "$LIB/current" 2>/dev/null || true)
  if [ "$cur" != "versions/$id" ]; then
    set_link current "versions/$id"
    [ -z "$cur" ] || set_link previous "$cur"
    say "current -> $id${cur:+ (previous -> ${cur#versions/})}"
  else
    say "$id is already current"
  fi
  prune_versions
  printf '#!/bin/sh\n# truss CLI and daemon, %s: the bundle on the pinned Node.\nexec %s %s "$@"\n' \
    "$WRAPPER_MARK" "'$LIB/current/bin/node'" "'$LIB/current/app/lib/truss.mjs'" | write_file "$BIN" 0755
}

# Removes version dirs other than current and previous (a running daemon uses one of those two).
prune_versions() {
  local keep1 keep2 d
  keep1=$(readlink "$LIB/current" 2>/dev/null || true)
  keep2=$(readlink "$LIB/previous" 2>/dev/null || true)
  for d in "$LIB"/versions/*; do
    [ -d "$d" ] || continue
    case "versions/${d##*/}" in "$keep1" | "$keep2") ;; *) rm -rf "$d" ;; esac
  done
}

install_service() {
  sed -e "s#/usr/local/lib/truss#$LIB#g" -e "s#/etc/default/truss#$ENV_FILE#g" \
    "$REPO/packaging/systemd/truss.service" | write_file "$UNIT" 0644
  if [ -e "$ENV_FILE" ]; then
    say "$ENV_FILE exists: kept"
  else
    write_file "$ENV_FILE" 0644 <"$ENV_TEMPLATE"
    say "wrote $ENV_FILE (settings: TRUSS_* variables)"
  fi
  if systemd_runs; then
    systemctl daemon-reload
    systemctl enable --quiet truss
    # restart, not `enable --now`: an upgrade must replace the running daemon; containers keep
    # their network meanwhile
    systemctl restart truss
    say "truss.service is $(systemctl is-active truss): systemctl status truss, journalctl -u truss"
  elif [ -n "$ROOT" ]; then
    say "TRUSS_INSTALL_ROOT is set: systemctl not called"
  else
    say "systemd does not run this host (PID 1 is $(cat /proc/1/comm)): start the daemon with your init system:"
    say "  $LIB/current/bin/node --max-semi-space-size=4 $LIB/current/app/lib/truss.mjs serve"
  fi
}

rollback() {
  local cur prev
  cur=$(readlink "$LIB/current" 2>/dev/null || true)
  prev=$(readlink "$LIB/previous" 2>/dev/null || true)
  [ -n "$prev" ] && [ -d "$LIB/$prev" ] || die "no previous version in $LIB to roll back to"
  set_link current "$prev"
  set_link previous "$cur"
  say "current -> ${prev#versions/} (previous -> ${cur#versions/}; --rollback again to undo)"
  if systemd_runs && [ -e "$UNIT" ]; then
    systemctl restart truss
    say "truss.service is $(systemctl is-active truss)"
  fi
}

uninstall() {
  if [ -e "$UNIT" ]; then
    if systemd_runs; then
      # stopping leaves the kernel as it is: running containers keep their network
      systemctl disable --now --quiet truss || true
    fi
    rm -f "$UNIT"
    if systemd_runs; then systemctl daemon-reload; fi
    say "removed $UNIT"
  fi
  if [ -e "$ENV_FILE" ]; then
    if cmp -s "$ENV_FILE" "$ENV_TEMPLATE"; then
      rm -f "$ENV_FILE"
      say "removed $ENV_FILE"
    else
      say "$ENV_FILE has your settings: kept (delete it yourself if you do not reinstall)"
    fi
  fi
  if [ -e "$BIN" ]; then
    if grep -qF "$WRAPPER_MARK" "$BIN"; then
      rm -f "$BIN"
      say "removed $BIN"
    else
      say "$BIN was not installed by this script: kept"
    fi
  fi
  if [ -e "$LIB" ]; then
    rm -rf "$LIB"
    say "removed $LIB"
  fi
  say "the state stays: /var/lib/truss (state.db, wireguard/); truss networks stay in Docker (docker network rm them first if truss is not coming back)"
}

case "$mode" in
  service)
    install_version
    install_service
    ;;
  cli)
    install_version
    # the managed plugin's state.source: Docker does not create a bind mount's source, and
    # `docker plugin enable` fails without it
    if [ ! -d "$ROOT/var/lib/truss" ]; then
      mkdir -p -m 0700 "$ROOT/var/lib/truss"
      say "made $ROOT/var/lib/truss (the managed plugin's state dir)"
    fi
    say "CLI only: truss status (the daemon's state dir, default /var/lib/truss), truss version"
    ;;
  rollback) rollback ;;
  uninstall) uninstall ;;
esac
