#!/usr/bin/env bash
# The on-demand benchmark: openrds against pgBackRest, pg_basebackup and a raw `tar | zstd`
# ceiling, on the same PostgreSQL 15 cluster and disk, alternating runs. Results (JSON and a
# Markdown table with ratios to pgBackRest) go to bench/results/. Not part of CI.
#
#   bash bench/run.sh                      # full size: pgbench -s 200 (~3 GB) and 20,000 small tables
#   BENCH_SCALE=50 BENCH_RUNS=2 bash bench/run.sh
#
# Knobs: BENCH_SCALE, BENCH_SMALL_TABLES, BENCH_RUNS, BENCH_LEVELS (1,3), BENCH_PROCESS_MAX (1,2),
# BENCH_DATASETS (pgbench,small), BENCH_OUT, BENCH_MERGE (an earlier bench/results/*.json whose other
# datasets the BENCHMARKS.md summary keeps, e.g. when only the small-files dataset is rerun).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
if ! command -v pgbackrest >/dev/null || [ ! -x /usr/bin/time ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbackrest time >/dev/null
fi
export OPENRDS_E2E_PREFIX=${OPENRDS_E2E_PREFIX:-/tmp/openrds-bench-install}
bash "$ROOT/deploy/install.sh" --prefix "$OPENRDS_E2E_PREFIX" --quiet
cd "$ROOT"
exec node e2e/dist/bench/bench.js
