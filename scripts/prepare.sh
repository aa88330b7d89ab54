#!/usr/bin/env bash
# PLACEHOLDER (branch `service`): the real scripts/prepare.sh is written on another branch and
# replaces this file on merge. Its interface, which scripts/install.sh relies on: run from
# anywhere, as root; installs the Debian packages the daemon calls, bootstraps Node/npm, runs
# `npm ci` when node_modules is stale and builds the bundle (dist/app/lib/truss.mjs); exit 0 when
# dist/app and node_modules/node/bin/node are ready. This placeholder does only the last two.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/node/bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
