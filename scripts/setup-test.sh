#!/usr/bin/env bash
# Everything the tests need, idempotently: the machine setup and build (scripts/setup.sh).
# The e2e suite starts its own PostgreSQL clusters (as the postgres OS user) and servers.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
