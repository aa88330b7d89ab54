#!/usr/bin/env bash
# Unpacks packages of Debian unstable into a private directory without touching the system's
# apt state or dpkg database: a private sources list, lists dir and cache, `apt-get download`,
# then `dpkg -x`. For tests against newer upstream builds than the machine's release ships
# (dockerd 28.x, Compose v2). Usage: scripts/lib/unstable.sh DEST PACKAGE...
# DEST/.packages lists "name version" of what was unpacked; a second call with the same
# packages and versions already unpacked does nothing (one `apt-get update` of the private lists).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DEST PACKAGE..." >&2; exit 2; }
dest=$1
shift
state=${TRUSS_UNSTABLE_STATE:-/var/cache/truss-unstable}
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dest"
echo 'deb http://deb.debian.org/debian sid main' >"$state/sources.list"
apt_opts=(-q -o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Acquire::Languages=none
  -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache")
apt-get "${apt_opts[@]}" update >/dev/null
want=$(for p in "$@"; do
  printf '%s %s\n' "$p" "$(apt-cache "${apt_opts[@]}" show --no-all-versions "$p" | sed -n 's/^Version: //p' | head -1)"
done | sort)
if [ -f "$dest/.packages" ] && [ "$(cat "$dest/.packages")" = "$want" ]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root download "$@" >/dev/null)
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest"; done
printf '%s\n' "$want" >"$dest/.packages"
