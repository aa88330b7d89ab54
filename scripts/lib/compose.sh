#!/usr/bin/env bash
# Docker Compose v2 for the e2e suite (e2e/compose.e2e.ts): Debian unstable's docker-compose
# unpacked into a private directory (scripts/lib/unstable.sh), never onto the system's PATH.
# The binary: $TRUSS_COMPOSE_DIR/usr/libexec/docker/cli-plugins/docker-compose (default dir
# /var/cache/truss-test/compose); it runs standalone (`docker-compose`) or as a docker CLI plugin.
# Idempotent: a second run with the same version unpacked does nothing.
set -euo pipefail
dest=${TRUSS_COMPOSE_DIR:-/var/cache/truss-test/compose}
bash "$(dirname "$0")/unstable.sh" "$dest" docker-compose
echo "setup: $("$dest/usr/libexec/docker/cli-plugins/docker-compose" version) in $dest"
