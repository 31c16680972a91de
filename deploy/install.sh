#!/usr/bin/env bash
# Installs the built programs where any OS user can run them (PostgreSQL runs archive_command and
# restore_command as its own user): <prefix>/{common,agent,repo-server,proto,node_modules} and
# wrappers in <prefix>/bin. Only production dependencies are copied. The install is staged and
# swapped in with a rename, so it is complete or missing. Idempotent.
#
#   bash deploy/install.sh [--prefix /opt/openrds] [--bin-dir /usr/local/bin] [--quiet]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/openrds
BIN_DIR=
QUIET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=$2; shift 2;;
    --prefix=*) PREFIX=${1#*=}; shift;;
    --bin-dir) BIN_DIR=$2; shift 2;;
    --bin-dir=*) BIN_DIR=${1#*=}; shift;;
    --quiet) QUIET=1; shift;;
    *) echo "install.sh: unknown argument '$1'" >&2; exit 2;;
  esac
done
[ "$PREFIX" = /opt/openrds ] && [ -z "$BIN_DIR" ] && BIN_DIR=/usr/local/bin
say() { [ "$QUIET" = 1 ] || echo "install: $*"; }

for f in agent/dist/cli.js repo-server/dist/server-cli.js repo-server/dist/admin-cli.js; do
  [ -f "$ROOT/$f" ] || { echo "install.sh: '$f' is missing: run 'npm run build' first" >&2; exit 1; }
done
NODE=$(command -v node)
mkdir -p "$(dirname "$PREFIX")"
STAGE=$(mktemp -d "$PREFIX.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

cp "$ROOT/package.json" "$ROOT/package-lock.json" "$STAGE/"
cp -r "$ROOT/proto" "$STAGE/proto"
for pkg in common agent repo-server; do
  mkdir -p "$STAGE/$pkg"
  cp "$ROOT/$pkg/package.json" "$STAGE/$pkg/"
  cp -r "$ROOT/$pkg/dist" "$STAGE/$pkg/dist"
  find "$STAGE/$pkg/dist" -name '*.test.*' -delete
done

# Production dependencies only, from npm's own resolution of the lockfile.
(cd "$ROOT" && npm ls --omit=dev --all --parseable 2>/dev/null) | while read -r dir; do
  rel=${dir#"$ROOT"/}
  case "$rel" in node_modules/*) ;; *) continue;; esac
  case "$rel" in node_modules/@openrds/*) continue;; esac
  mkdir -p "$STAGE/$(dirname "$rel")"
  [ -e "$STAGE/$rel" ] || cp -a "$dir" "$STAGE/$rel"
done
mkdir -p "$STAGE/node_modules/@openrds"
ln -s ../../common "$STAGE/node_modules/@openrds/common"
[ -d "$STAGE/node_modules/zstd-napi/build/Release" ] || { echo "install.sh: zstd-napi is not built (run scripts/setup.sh)" >&2; exit 1; }

mkdir -p "$STAGE/bin"
wrapper() {
  cat > "$STAGE/bin/$1" <<WRAP
#!/bin/sh
exec "$NODE" "$PREFIX/$2" "\$@"
WRAP
  chmod 755 "$STAGE/bin/$1"
}
wrapper openrds-agent agent/dist/cli.js
wrapper openrds-repo-server repo-server/dist/server-cli.js
wrapper openrds-admin repo-server/dist/admin-cli.js
chmod -R u+rwX,go+rX,go-w "$STAGE"
chmod 755 "$STAGE"

if [ -d "$PREFIX" ]; then mv "$PREFIX" "$PREFIX.old.$$"; fi
mv "$STAGE" "$PREFIX"
trap - EXIT
rm -rf "$PREFIX.old.$$"
if [ -n "$BIN_DIR" ]; then
  mkdir -p "$BIN_DIR"
  for b in openrds-agent openrds-repo-server openrds-admin; do ln -sfn "$PREFIX/bin/$b" "$BIN_DIR/$b"; done
fi
say "installed into $PREFIX${BIN_DIR:+ (commands linked in $BIN_DIR)}"
