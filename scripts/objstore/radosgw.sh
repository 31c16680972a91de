#!/usr/bin/env bash
# A single-node Ceph with an S3 gateway (radosgw) on 127.0.0.1, for tests: monitor, one memstore
# OSD, cephx off. Debian's radosgw is the most faithful S3 server we can run offline.
#   radosgw.sh install                      apt packages (idempotent)
#   radosgw.sh start DIR RGW_PORT MON_PORT  start; prints nothing, exits when S3 answers (user testkey/testsecret)
#   radosgw.sh stop DIR                     stop every daemon of DIR
#   radosgw.sh gw-stop DIR / gw-start DIR PORT   stop / start the S3 gateway only (objects stay in the OSD)
set -euo pipefail
cmd=${1:-}
case "$cmd" in
install)
  if ! command -v radosgw >/dev/null || ! command -v ceph-mon >/dev/null || ! command -v uuidgen >/dev/null || ! command -v curl >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends radosgw ceph-mon ceph-osd ceph-common uuid-runtime curl >/dev/null
  fi
  ;;
start)
  C=$2; PORT=$3; MONPORT=$4
  rm -rf "$C"; mkdir -p "$C"/{mon,osd0,run,log,rgw}; cd "$C"; FSID=$(uuidgen)
  cat > ceph.conf <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MONPORT
mon initial members = a
public addr = 127.0.0.1
ms bind ipv4 = true
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
# Required with auth none, or radosgw hangs ("get_initial_auth_request returned -13").
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 2147483648
run dir = $C/run
log file = $C/log/\$name.log
admin socket = $C/run/\$name.asok
pid file = $C/run/\$name.pid
mon data = $C/mon/\$name
osd data = $C/osd0
keyring = $C/keyring
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $C/rgw
CONF
  ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$MONPORT]" --fsid "$FSID" monmap >/dev/null
  ceph-mon -c "$C/ceph.conf" --mkfs -i a --monmap monmap --keyring keyring >/dev/null 2>&1
  ceph-mon -c "$C/ceph.conf" -i a
  timeout 60 ceph -c "$C/ceph.conf" osd create >/dev/null
  ceph-osd -c "$C/ceph.conf" -i 0 --mkfs >/dev/null 2>&1
  timeout 60 ceph -c "$C/ceph.conf" osd crush add osd.0 1.0 host=localhost root=default >/dev/null 2>&1
  ceph-osd -c "$C/ceph.conf" -i 0 2>/dev/null
  radosgw -c "$C/ceph.conf" -n client.rgw
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.5; done
  timeout 60 radosgw-admin -c "$C/ceph.conf" user create --uid=test --display-name=test --access-key=testkey --secret-key=testsecret >/dev/null
  ;;
stop)
  C=$2
  pkill -f -- "-c $C/ceph.conf" 2>/dev/null || true
  for _ in $(seq 1 50); do pgrep -f -- "-c $C/ceph.conf" >/dev/null || break; sleep 0.1; done
  pkill -9 -f -- "-c $C/ceph.conf" 2>/dev/null || true
  ;;
gw-stop)
  C=$2
  pkill -f -- "radosgw -c $C/ceph.conf" 2>/dev/null || true
  for _ in $(seq 1 100); do pgrep -f -- "radosgw -c $C/ceph.conf" >/dev/null || break; sleep 0.1; done
  ;;
gw-start)
  C=$2; PORT=$3
  cd "$C"
  radosgw -c "$C/ceph.conf" -n client.rgw
  for _ in $(seq 1 120); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.5; done
  ;;
*) echo "usage: $0 install | start DIR RGW_PORT MON_PORT | stop DIR | gw-stop DIR | gw-start DIR PORT" >&2; exit 2 ;;
esac
