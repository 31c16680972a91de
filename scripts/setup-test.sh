#!/usr/bin/env bash
# Everything the tests need, idempotently: the machine setup and build (scripts/setup.sh).
# The e2e suite starts its own PostgreSQL clusters (as the postgres OS user) and servers
# (repo-server, agents, radosgw).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
# S3 tests run against a real radosgw (single-node Ceph on 127.0.0.1, started by the tests).
bash "$ROOT/scripts/objstore/radosgw.sh" install
# The SSH tunnel tests run a real OpenSSH server on 127.0.0.1.
if [ ! -x /usr/sbin/sshd ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssh-server >/dev/null
fi
