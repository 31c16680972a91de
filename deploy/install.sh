#!/usr/bin/env bash
# Installs the built programs where any OS user can run them (PostgreSQL runs archive_command and
# restore_command as its own user): <prefix>/{common,agent,repo-server,proto,node_modules} and
# wrappers in <prefix>/bin. Only production dependencies are copied. The install is staged and
# swapped in with a rename, so it is complete or missing. Idempotent: when the build, the
# dependencies and node are unchanged since the last install into the prefix, nothing is copied.
#
#   bash deploy/install.sh [--prefix /opt/openrds] [--bin-dir /usr/local/bin] [--quiet]
#   bash deploy/install.sh --fingerprint     # prints the fingerprint of what would be installed
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/openrds
BIN_DIR=
BIN_DIR_SET=0
QUIET=0
PRINT_FINGERPRINT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift 2;;
    --prefix=*) PREFIX=${1#*=}; shift;;
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a directory}; BIN_DIR_SET=1; shift 2;;
    --bin-dir=*) BIN_DIR=${1#*=}; BIN_DIR_SET=1; shift;;
    --quiet) QUIET=1; shift;;
    --fingerprint) PRINT_FINGERPRINT=1; shift;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "install.sh: unknown argument '$1'" >&2; exit 2;;
  esac
done
# The wrappers hold the prefix, so it must be absolute; trailing slashes would break the renames.
PREFIX=$(realpath -m "$PREFIX")
[ "$PREFIX" != / ] || { echo "install.sh: refusing to install into '/'" >&2; exit 2; }
[ "$PREFIX" = /opt/openrds ] && [ "$BIN_DIR_SET" = 0 ] && BIN_DIR=/usr/local/bin
say() { [ "$QUIET" = 1 ] || echo "install: $*"; }

cd "$ROOT"
for f in agent/dist/cli.js repo-server/dist/server-cli.js repo-server/dist/admin-cli.js common/dist/index.js; do
  [ -f "$f" ] || { echo "install.sh: '$f' is missing: run 'npm run build' first" >&2; exit 1; }
done
[ -d node_modules/zstd-napi/build/Release ] || { echo "install.sh: zstd-napi is not built: run scripts/setup.sh" >&2; exit 1; }
NODE=$(command -v node) || { echo "install.sh: 'node' is not on PATH" >&2; exit 1; }
NODE=$(realpath "$NODE")
# The wrappers are for every user; a node under a private home (nvm as root) would not run for postgres.
if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- "$NODE" --version >/dev/null 2>&1; then
  echo "install.sh: warning: the OS user postgres cannot run '$NODE': archive_command will fail; install node system-wide" >&2
fi

# Everything an install is made of: node, the lockfiles, the packages' manifests and build output.
fingerprint() {
  {
    echo "node $NODE $("$NODE" --version) jemalloc ${JEMALLOC:-none}"
    sha256sum deploy/install.sh
    find package.json package-lock.json node_modules/.package-lock.json common/package.json agent/package.json \
      repo-server/package.json common/dist agent/dist repo-server/dist proto node_modules/zstd-napi/build/Release \
      -type f ! -name '*.tsbuildinfo' ! -name '*.test.*' -print0 2>/dev/null | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}
JEMALLOC=$( (ldconfig -p 2>/dev/null || true) | awk '/libjemalloc\.so\.2 .*x86-64|libjemalloc\.so\.2 .*AArch64/ { print $NF; exit }')
FINGERPRINT=$(fingerprint)
if [ "$PRINT_FINGERPRINT" = 1 ]; then echo "$FINGERPRINT"; exit 0; fi

link_bins() {
  [ -n "$BIN_DIR" ] || return 0
  mkdir -p "$BIN_DIR"
  for b in openrds-agent openrds-repo-server openrds-admin; do ln -sfn "$PREFIX/bin/$b" "$BIN_DIR/$b"; done
}

mkdir -p "$(dirname "$PREFIX")"
# Concurrent installs into one parent directory (parallel test runs) take turns; the second finds
# the install done. The lock is on the directory itself, so no lock file is left behind.
exec 9<"$(dirname "$PREFIX")"
flock 9
if [ -f "$PREFIX/.install-fingerprint" ] && [ "$(cat "$PREFIX/.install-fingerprint")" = "$FINGERPRINT" ]; then
  link_bins
  say "$PREFIX is up to date"
  exit 0
fi

STAGE=$(mktemp -d "$PREFIX.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

cp package.json package-lock.json "$STAGE/"
cp -r proto "$STAGE/proto"
for pkg in common agent repo-server; do
  mkdir -p "$STAGE/$pkg"
  cp "$pkg/package.json" "$STAGE/$pkg/"
  cp -r "$pkg/dist" "$STAGE/$pkg/dist"
  find "$STAGE/$pkg/dist" \( -name '*.test.*' -o -name '*.tsbuildinfo' \) -delete
done

# Production dependencies only, from npm's own resolution of the lockfile (hoisted ones and any
# nested under a workspace package), keeping the layout so that node resolves them the same way.
(npm ls --omit=dev --all --parseable 2>/dev/null || true) | while read -r dir; do
  rel=${dir#"$ROOT"/}
  case "$rel" in
    node_modules/@openrds/*) continue;;
    node_modules/*|common/node_modules/*|agent/node_modules/*|repo-server/node_modules/*) ;;
    *) continue;;
  esac
  mkdir -p "$STAGE/$(dirname "$rel")"
  [ -e "$STAGE/$rel" ] || cp -a "$dir" "$STAGE/$rel"
done
[ -d "$STAGE/node_modules/zstd-napi/build/Release" ] && [ -d "$STAGE/node_modules/pg" ] \
  || { echo "install.sh: 'npm ls' did not list the production dependencies (zstd-napi, pg): is node_modules complete? run scripts/setup.sh" >&2; exit 1; }
# The workspace package the programs import, as npm links it: relative, so the prefix can move.
mkdir -p "$STAGE/node_modules/@openrds"
ln -s ../../common "$STAGE/node_modules/@openrds/common"

mkdir -p "$STAGE/bin"
# Memory returned to the system. glibc's malloc keeps what threads freed in per-thread arenas, and a
# daemon's RSS ratchets up over many operations (the buffers of 80,000 small files passing through
# worker threads: the repo-server went from 310 to 500 MB over a benchmark). jemalloc (Debian's
# libjemalloc2, installed by scripts/setup.sh) gives it back: the programs run with it when it is
# installed (OPENRDS_JEMALLOC=0 turns that off), else with two glibc arenas instead of one per thread.
# jemalloc keeps freed pages for 10 s by default (no lazy "muzzy" stage here). The repo-server gives
# them back after 1 s: that took 20-40 MB off peak RSS in a backup and restore of 62,000 small files,
# for the same CPU (3 runs each), and its peak is near the 300 MB target (278 MB). The agent keeps
# jemalloc's 10 s: with 1 s, every WAL segment (one every second or so under load) faulted its
# buffers in afresh, ~30,000 page faults in 20 s at ~11 us each on a VM, on the path archive_command
# waits on (stop 31: p50 11.8 ms against 16.0 over 3 alternated OLTP runs; its peak in the
# small-files backup 220 MB).
wrapper() {
  {
    echo '#!/bin/sh'
    if [ -n "$JEMALLOC" ]; then
      echo "if [ \"\${OPENRDS_JEMALLOC:-1}\" != 0 ] && [ -r $JEMALLOC ]; then"
      echo "  export LD_PRELOAD=\"$JEMALLOC\${LD_PRELOAD:+ \$LD_PRELOAD}\" MALLOC_CONF=\"\${MALLOC_CONF:-background_thread:true,dirty_decay_ms:$4,muzzy_decay_ms:0}\""
      echo 'fi'
    fi
    echo 'export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"'
    printf 'exec "%s" %s"%s" "$@"\n' "$NODE" "${3:+$3 }" "$PREFIX/$2"
  } > "$STAGE/bin/$1"
  chmod 755 "$STAGE/bin/$1"
}
# The agent's young generation is 8 MiB instead of V8's 32 (two 16 MiB semi-spaces, kept committed
# once grown): a daemon that runs for days settled 30-50 MB lower (lab: 20,000 tables, process-max 2,
# daemons kept over 3 rounds of full/incr/restore/delta, twice each: peak in full backups 254-259 MB
# against 283-307, restores 216-223 against 244-278), for about the same CPU. The repo-server keeps
# the default: its old generation grew instead (delta restores 230-264 MB against 196-209).
# The repo-server's old generation may reach 32 MiB before V8 collects it for its size: between
# large operations its heap is ~15 MiB, and each WAL segment pushed brings ~12 MiB of buffers
# (the gRPC stream's, then the upload moved to a worker), whose external memory made V8 run a full
# collection every ~2 segments (10 in a 23-segment cold backlog). With it, 2, and the repo-server
# spent 55-75 ms of CPU per segment instead of 74-97 (bench/wal cold backlog, stop 34, 5 runs
# each way, alternated: 7.8-9.3 segments/s against 7.2-9.0; peak RSS 230-249 MB against 235-243).
# Large operations (backups, restores) grow the heap far past it, where it changes nothing. The
# agent showed no gain (119-147 ms either way).
wrapper openrds-agent agent/dist/cli.js --max-semi-space-size=4 10000
wrapper openrds-repo-server repo-server/dist/server-cli.js --initial-old-space-size=32 1000
wrapper openrds-admin repo-server/dist/admin-cli.js '' 1000
echo "$FINGERPRINT" > "$STAGE/.install-fingerprint"
# World-readable; executables stay executable (X adds x to directories and to files that have one).
chmod -R u+rwX,go+rX,go-w "$STAGE"
chmod 755 "$STAGE"

OLD=
if [ -e "$PREFIX" ]; then OLD=$(mktemp -u "$PREFIX.old.XXXXXX"); mv -T "$PREFIX" "$OLD"; fi
mv -T "$STAGE" "$PREFIX"
trap - EXIT
[ -z "$OLD" ] || rm -rf "$OLD"
link_bins
say "installed into $PREFIX${BIN_DIR:+ (commands linked in $BIN_DIR)}"
