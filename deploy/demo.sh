#!/usr/bin/env bash
# The quickstart, end to end on this machine: a PostgreSQL 15 cluster with data checksums, an
# openrds-repo-server, an openrds-agent; stanza-create, check, a full backup, more writes, then a
# point-in-time restore into a second directory that is started and checked row by row.
#
#   bash deploy/demo.sh              (as root on Debian 12 with Node 20; idempotent)
#
# Everything lives under $DEMO (default /var/tmp/openrds-demo) and is stopped at the end;
# KEEP=1 leaves the clusters and servers running for a look around. The agent and openrds-admin
# reach the repo-server over mutual TLS with certificates made by `openrds-admin pki`; TLS=0 runs
# the plain loopback mode instead. The repository is encrypted (aes-256-gcm, a random passphrase
# in $DEMO/cipher.pass given to the repo-server through its environment); ENCRYPT=0 keeps it plain.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${DEMO:-/var/tmp/openrds-demo}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PORT=${DEMO_PG_PORT:-54321}
PORT2=${DEMO_PG_PORT2:-54322}
SERVER_PORT=${DEMO_SERVER_PORT:-18432}
PREFIX=${PREFIX:-/opt/openrds}
STANZA=demo
TLS=${TLS:-1}
ENCRYPT=${ENCRYPT:-1}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
as_pg() { runuser -u postgres -- "$@"; }
psql_src() { as_pg "$PGBIN/psql" -X -q -h "$DEMO/run" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"; }
psql_dst() { as_pg "$PGBIN/psql" -X -q -h "$DEMO/run" -p "$PORT2" -d postgres -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
  [ "${KEEP:-0}" = 1 ] && { say "KEEP=1: leaving everything running under $DEMO"; return; }
  as_pg "$PGBIN/pg_ctl" -D "$DEMO/restore" -m fast stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$DEMO/pgdata" -m fast stop >/dev/null 2>&1 || true
  [ -f "$DEMO/run/agent.pid" ] && kill "$(cat "$DEMO/run/agent.pid")" 2>/dev/null || true
  [ -f "$DEMO/run/server.pid" ] && kill "$(cat "$DEMO/run/server.pid")" 2>/dev/null || true
}
trap cleanup EXIT

say "setup: Debian packages, npm dependencies, build"
bash "$ROOT/scripts/setup.sh"
say "install the programs into $PREFIX (PostgreSQL runs the agent as user postgres)"
bash "$ROOT/deploy/install.sh" --prefix "$PREFIX"
AGENT=$PREFIX/bin/openrds-agent; ADMIN=$PREFIX/bin/openrds-admin; SERVER=$PREFIX/bin/openrds-repo-server

say "fresh demo directory $DEMO"
cleanup
rm -rf "$DEMO"
mkdir -p "$DEMO"/{run,log,repo}
chmod 755 "$DEMO"
chown postgres:postgres "$DEMO" "$DEMO"/{run,log}
CONF=$DEMO/openrds.conf
TLS_CONF=""
REPO_HOST=127.0.0.1
if [ "$TLS" = 1 ]; then
  say "certificates: openrds-admin pki init (CA + repo-server), pki issue (agent, admin)"
  "$ADMIN" pki init --pki-path="$DEMO/pki" --host=localhost --host=127.0.0.1 --no-config
  "$ADMIN" pki issue --cn=agent-$STANZA --pki-path="$DEMO/pki" --no-config >/dev/null
  "$ADMIN" pki issue --cn=admin --pki-path="$DEMO/pki" --no-config >/dev/null
  # The agent runs as postgres and must own its key (mode 0600, as every key pki writes).
  chmod 755 "$DEMO/pki"
  chown postgres:postgres "$DEMO/pki/agent-$STANZA.crt" "$DEMO/pki/agent-$STANZA.key"
  # A name, not an IP address: Node warns (DEP0123) when TLS is dialed to an IP literal.
  REPO_HOST=localhost
  TLS_CONF="tls-server-cert-file=$DEMO/pki/server.crt
tls-server-key-file=$DEMO/pki/server.key
tls-server-ca-file=$DEMO/pki/ca.crt
tls-server-auth=agent-$STANZA=$STANZA
tls-server-admin=admin
repo-host-ca-file=$DEMO/pki/ca.crt
repo-host-cert-file=$DEMO/pki/admin.crt
repo-host-key-file=$DEMO/pki/admin.key

[global:agent]
repo-host-cert-file=$DEMO/pki/agent-$STANZA.crt
repo-host-key-file=$DEMO/pki/agent-$STANZA.key

[global:archive-push]
repo-host-cert-file=$DEMO/pki/agent-$STANZA.crt
repo-host-key-file=$DEMO/pki/agent-$STANZA.key

[global:archive-get]
repo-host-cert-file=$DEMO/pki/agent-$STANZA.crt
repo-host-key-file=$DEMO/pki/agent-$STANZA.key
"
fi
CIPHER_CONF=
if [ "$ENCRYPT" = 1 ]; then
  # The passphrase never goes into the shared config file (the agent reads that one).
  ( umask 077; openssl rand -base64 32 > "$DEMO/cipher.pass" )
  CIPHER_CONF="repo1-cipher-type=aes-256-gcm"
fi
cat > "$CONF" <<CONF
[global]
repo1-path=$DEMO/repo
tls-server-address=127.0.0.1
tls-server-port=$SERVER_PORT
repo-host=$REPO_HOST
repo-host-port=$SERVER_PORT
agent-socket-path=$DEMO/run/agent.sock
lock-path=$DEMO/lock
log-level-console=info
archive-timeout=60
$CIPHER_CONF
$TLS_CONF

[$STANZA]
pg1-path=$DEMO/pgdata
pg1-port=$PORT
pg1-socket-path=$DEMO/run
CONF
chmod 644 "$CONF"

say "initdb a PostgreSQL 15 cluster with data checksums"
as_pg "$PGBIN/initdb" -D "$DEMO/pgdata" -U postgres --auth=trust --data-checksums -E UTF8 --locale=C >/dev/null
cat >> "$DEMO/pgdata/postgresql.conf" <<PGCONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$DEMO/run'
wal_level = replica
archive_mode = on
archive_command = '$AGENT archive-push %p --stanza=$STANZA --config=$CONF'
PGCONF
as_pg "$PGBIN/pg_ctl" -D "$DEMO/pgdata" -l "$DEMO/log/pgdata.log" -w start >/dev/null

say "start openrds-repo-server (repo $DEMO/repo) and openrds-agent (as postgres)"
if [ "$ENCRYPT" = 1 ]; then
  OPENRDS_REPO1_CIPHER_PASS=$(cat "$DEMO/cipher.pass") "$SERVER" --config="$CONF" >"$DEMO/log/repo-server.log" 2>&1 &
else
  "$SERVER" --config="$CONF" >"$DEMO/log/repo-server.log" 2>&1 &
fi
echo $! > "$DEMO/run/server.pid"
as_pg "$AGENT" serve --stanza=$STANZA --config="$CONF" >"$DEMO/log/agent.log" 2>&1 &
echo $! > "$DEMO/run/agent.pid"
for _ in $(seq 1 100); do "$ADMIN" agents --config="$CONF" 2>/dev/null | grep -q "stanza $STANZA" && break; sleep 0.2; done

say "openrds-admin stanza-create / check"
"$ADMIN" stanza-create --stanza=$STANZA --config="$CONF"
"$ADMIN" check --stanza=$STANZA --config="$CONF"

say "some data, then openrds-admin backup --type=full"
as_pg "$PGBIN/pgbench" -h "$DEMO/run" -p "$PORT" -i -s 5 -q postgres 2>&1 | tail -1
psql_src -c "CREATE TABLE demo_events (id int PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())"
psql_src -c "INSERT INTO demo_events SELECT g, 'before the backup' FROM generate_series(1, 1000) g"
"$ADMIN" backup --stanza=$STANZA --type=full --start-fast --config="$CONF"

say "more writes: rows 1001-2000 before the target time, rows 2001-3000 after it"
psql_src -c "INSERT INTO demo_events SELECT g, 'after the backup, before the target' FROM generate_series(1001, 2000) g"
sleep 1.1
TARGET=$(psql_src -At -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 1.1
psql_src -c "INSERT INTO demo_events SELECT g, 'after the target' FROM generate_series(2001, 3000) g"
EXPECTED=$(psql_src -At -c "SELECT count(*) || ' rows, ' || md5(string_agg(id || note, ',' ORDER BY id)) FROM demo_events WHERE at <= '$TARGET'")
ACCOUNTS=$(psql_src -At -c "SELECT sum(abalance) || '/' || count(*) FROM pgbench_accounts")
echo "target time: $TARGET; at that time demo_events had $EXPECTED"
"$ADMIN" check --stanza=$STANZA --config="$CONF" >/dev/null   # forces the WAL with the last writes into the archive

say "openrds-admin info"
"$ADMIN" info --config="$CONF"

say "restore to the target time into $DEMO/restore"
"$ADMIN" restore --stanza=$STANZA --config="$CONF" --pg1-path="$DEMO/restore" \
  --type=time --target="$TARGET" --target-action=promote --archive-mode=off
as_pg "$PGBIN/pg_ctl" -D "$DEMO/restore" -o "-p $PORT2" -l "$DEMO/log/restore.log" -w -t 120 start >/dev/null
for _ in $(seq 1 120); do [ "$(psql_dst -At -c 'SELECT pg_is_in_recovery()')" = f ] && break; sleep 0.5; done
GOT=$(psql_dst -At -c "SELECT count(*) || ' rows, ' || md5(string_agg(id || note, ',' ORDER BY id)) FROM demo_events")
GOT_ACCOUNTS=$(psql_dst -At -c "SELECT sum(abalance) || '/' || count(*) FROM pgbench_accounts")
echo "restored cluster: demo_events has $GOT; pgbench_accounts $GOT_ACCOUNTS"
if [ "$GOT" = "$EXPECTED" ] && [ "$GOT_ACCOUNTS" = "$ACCOUNTS" ]; then
  say "DEMO OK: the restored cluster holds exactly the data of $TARGET"
else
  say "DEMO FAILED: expected demo_events $EXPECTED and pgbench_accounts $ACCOUNTS"
  tail -20 "$DEMO/log/restore.log" || true
  exit 1
fi
