#!/usr/bin/env bash
# Upload throughput of one gRPC stream across an artificial round-trip time, with grpc-js's
# default 64 KiB server window and with the repo-server's raised windows. The delay comes from a
# TCP proxy that holds data for the given time in each direction (see e2e/src/bench/rtt.ts).
# On demand, not in CI. Usage: bash bench/rtt.sh [MiB per upload]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MIB=${1:-256}
[ -f "$ROOT/e2e/dist/bench/rtt.js" ] || (cd "$ROOT" && npm run build >/dev/null)
JS="$ROOT/e2e/dist/bench/rtt.js"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
wait_ready() { for _ in $(seq 100); do grep -q ready "$1" 2>/dev/null && return; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }
echo "| one-way delay | server window | MB/s |"
echo "|---|---|---|"
for delay in 0 0.5 2 10; do
  for raise in 0 1; do
    sp=47100 pp=47101
    node "$JS" server 127.0.0.1 $sp $raise > /tmp/openrds-rtt-server.log 2>&1 & PIDS+=($!)
    node "$JS" proxy $pp $sp "$delay" > /tmp/openrds-rtt-proxy.log 2>&1 & PIDS+=($!)
    wait_ready /tmp/openrds-rtt-server.log; wait_ready /tmp/openrds-rtt-proxy.log
    out=$(node "$JS" client 127.0.0.1 $pp "$MIB")
    kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; PIDS=()
    mbps=$(echo "$out" | sed -n 's/.*"mbps":\([0-9.]*\).*/\1/p')
    echo "| ${delay} ms | $([ $raise = 1 ] && echo '16 MiB (raised)' || echo '64 KiB (grpc-js default)') | $mbps |"
  done
done
