#!/usr/bin/env bash
# WAL archiving under a bulk load: openrds synchronous, openrds asynchronous and pgBackRest's
# asynchronous archive-push, one cluster each. Prints segments/s and archive_command p50/p99.
# On demand, not in CI. Knobs: BENCH_WAL_SCALE (pgbench scale of the load, 30), BENCH_PROCESS_MAX (2; another value writes its own BENCHMARKS.md section),
# BENCH_WAL_COLD_ROWS (rows of the table that makes the cold backlog, 4000000; its drain also reports the machine's CPU per segment), BENCH_WAL_LOAD (init: pgbench -i; tpcb: pgbench -T with BENCH_WAL_CLIENTS/SECONDS/RATE, its own BENCHMARKS.md
# section), BENCH_WAL_STREAM (y|n: archive-push-stream for openrds-async), BENCH_WAL_MODES (a comma list of the modes
# to run: openrds-sync, openrds-async, openrds-async-stream, pgbackrest-async). To look into a run: BENCH_WAL_LOG=debug
# (the daemons' logs, kept in /tmp/openrds-wal-bench-<mode>-*.log), BENCH_WAL_DEBUG=1 (the replaying copy logs each
# restore_command and its start-up steps), BENCH_WAL_TRACE=<dir> (each restore_command of the replay under strace),
# BENCH_WAL_PROF=<dir> (CPU profiles of both daemons and the load's window), BENCH_WAL_NODE_FLAGS (e.g. --trace-gc),
# BENCH_WAL_CPU_BY=1 (the CPU per segment of each process while each backlog drains, and the daemons' peak RSS),
# BENCH_WAL_PERF=<file> (perf record -a -g of the machine while the cold backlog drains: <file>-<mode>; with
# BENCH_WAL_NODE_FLAGS=--perf-basic-prof perf names the JavaScript frames).
# Mode minimal-c is a yardstick, not a tool (bench/minimal-pusher.c, compiled with gcc): on each .ready, the last
# BENCH_MINIMAL_REST bytes (256 KiB) over TCP to a server that writes, fdatasyncs, renames and fsyncs, then the .ok;
# no backlog or replay (it stores no WAL). BENCH_MINIMAL_SYNC=n: its server syncs nothing; BENCH_MINIMAL_BESIDE=y:
# openrds' daemon pushes and pre-streams every segment on the same cluster meanwhile (a diagnosis).
# Mode minimal-node is the same yardstick in Node (bench/minimal-pusher.js; the wait stays the C one), to tell Node's
# own cost from our path's: BENCH_MINIMAL_REUSE=y keeps its buffers from one file to the next, BENCH_MINIMAL_GRPC=call|stream
# sends over grpc-js (a unary call per file, or one bidirectional stream kept open), BENCH_MINIMAL_WORK=y adds zstd and
# sha256, BENCH_MINIMAL_TRACE=<prefix> logs each step's time and its thread's scheduler counters.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
if ! command -v pgbackrest >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgbackrest >/dev/null
fi
export OPENRDS_E2E_PREFIX=${OPENRDS_E2E_PREFIX:-/tmp/openrds-bench-install}
bash "$ROOT/deploy/install.sh" --prefix "$OPENRDS_E2E_PREFIX" --quiet
cd "$ROOT"
exec node e2e/dist/bench/wal.js
