#!/usr/bin/env bash
# Interop tests: a real `switchboard serve` against clients nobody here wrote — Python
# `websockets` (installed into a venv this script creates), `curl -N` (SSE, streaming,
# long-poll) and the Python standard library's HTTP client (polling).
# Prints "interop: N passed, M failed"; exit code = result.
# SWITCHBOARD_BIN overrides the binary (default: cargo build).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
command -v curl >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq --no-install-recommends curl >/dev/null; }
VENV="$ROOT/target/interop-venv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import websockets' 2>/dev/null; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 needs its venv module installed separately.
    rm -rf "$VENV"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
fi
# shellcheck source=../../scripts/lib/serve.sh
source "$ROOT/scripts/lib/serve.sh"
start_switchboard "$ROOT"
timeout 120 "$VENV/bin/python" -u interop.py "http://$ADDR"
