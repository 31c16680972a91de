#!/usr/bin/env bash
# Upload throughput of one gRPC stream across an artificial round-trip time, with grpc-js's
# default 64 KiB server window and with the repo-server's raised windows. Two network namespaces
# joined by a veth pair (10.213.0.1 / 10.213.0.2, private to this script), `tc netem` delay on
# both ends. Root only; on demand, not in CI. Usage: bash bench/rtt.sh [MiB per upload]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MIB=${1:-256}
[ -f "$ROOT/e2e/dist/bench/rtt.js" ] || (cd "$ROOT" && npm run build >/dev/null)
A=openrds-rtt-a B=openrds-rtt-b
cleanup() { ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true; kill "${SERVER:-}" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $A; ip netns add $B
ip link add veth-rtt-a type veth peer name veth-rtt-b
ip link set veth-rtt-a netns $A; ip link set veth-rtt-b netns $B
ip -n $A addr add 10.213.0.1/24 dev veth-rtt-a; ip -n $B addr add 10.213.0.2/24 dev veth-rtt-b
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A link set veth-rtt-a up; ip -n $B link set veth-rtt-b up
echo "| one-way delay | server window | MB/s |"
echo "|---|---|---|"
for delay in 0 0.5 2; do
  if [ "$delay" != 0 ]; then
    ip netns exec $A tc qdisc replace dev veth-rtt-a root netem delay ${delay}ms limit 100000
    ip netns exec $B tc qdisc replace dev veth-rtt-b root netem delay ${delay}ms limit 100000
  fi
  for raise in 0 1; do
    port=$((47000 + raise))
    ip netns exec $A node "$ROOT/e2e/dist/bench/rtt.js" server 10.213.0.1 $port $raise > /tmp/openrds-rtt-server.log 2>&1 &
    SERVER=$!
    for _ in $(seq 50); do grep -q ready /tmp/openrds-rtt-server.log 2>/dev/null && break; sleep 0.1; done
    out=$(ip netns exec $B node "$ROOT/e2e/dist/bench/rtt.js" client 10.213.0.1 $port "$MIB")
    kill $SERVER; wait $SERVER 2>/dev/null || true
    mbps=$(echo "$out" | sed -n 's/.*"mbps":\([0-9.]*\).*/\1/p')
    echo "| ${delay} ms | $([ $raise = 1 ] && echo '16 MiB (raised)' || echo '64 KiB (default)') | $mbps |"
  done
done
