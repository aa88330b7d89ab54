#!/usr/bin/env bash
# Set up and run truss for the local Docker, with the embedded state store (no etcd).
# scripts/prepare.sh first (idempotent): the Debian packages whose programs the daemon runs,
# npm from Debian's packages where the host has none, the pinned Node and dependencies with
# `npm ci`, and the daemon bundle (dist/app/lib/truss.mjs, the same bundle the managed plugin
# ships; each step skipped when done). Then `truss serve` from the bundle in the foreground;
# extra arguments go to `truss serve`. `scripts/run.sh doctor [ARGS]` does the same set-up and
# runs `truss doctor [ARGS]` instead (checks the host; exit 0 when everything needed is there).
# Set-up output goes to stderr. (bin/truss runs the same code from source, for development.)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "run.sh: truss programs the kernel and must run as root (sudo scripts/run.sh)" >&2
  exit 1
fi

bash scripts/prepare.sh >&2

if [ "${1:-}" = doctor ]; then
  shift
  exec node_modules/node/bin/node dist/app/lib/truss.mjs doctor "$@"
fi
# why: a control-plane daemon allocates little; V8's default young generation is resident memory
# for nothing (capping it saved 25-30 MiB at 1,000 endpoints: docs/benchmarks.md, Scale)
exec node_modules/node/bin/node --max-semi-space-size=4 --heap-growing-percent=50 dist/app/lib/truss.mjs serve "$@"
