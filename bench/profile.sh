#!/usr/bin/env bash
# CPU profiles (node --cpu-prof) of the agent and the repo-server during one full backup, restore
# and delta restore of a pgbench cluster; prints the top functions by self time per thread.
# On demand, not in CI. Knobs: BENCH_SCALE (20), BENCH_PROCESS_MAX (1), BENCH_LEVEL (3),
# BENCH_OPS (full,incr,restore,delta: default full,restore,delta), BENCH_TOP (25),
# BENCH_DATASET (pgbench | small), BENCH_SMALL_TABLES (2000).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
export OPENRDS_E2E_PREFIX=${OPENRDS_E2E_PREFIX:-/tmp/openrds-bench-install}
bash "$ROOT/deploy/install.sh" --prefix "$OPENRDS_E2E_PREFIX" --quiet
cd "$ROOT"
exec node e2e/dist/bench/profile.js
