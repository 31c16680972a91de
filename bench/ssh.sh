#!/usr/bin/env bash
# Backup and restore through the SSH tunnel against direct mutual TLS, same machine, same data.
# On demand, not in CI. Knobs: BENCH_SSH_SCALE (pgbench scale, 20), BENCH_SSH_RUNS (3), BENCH_PROCESS_MAX (2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup-test.sh"
export OPENRDS_E2E_PREFIX=${OPENRDS_E2E_PREFIX:-/tmp/openrds-bench-install}
bash "$ROOT/deploy/install.sh" --prefix "$OPENRDS_E2E_PREFIX" --quiet
cd "$ROOT"
exec node e2e/dist/bench/ssh.js
