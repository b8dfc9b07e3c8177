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
BIN="${SWITCHBOARD_BIN:-}"
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build -q -p switchboard-server --bin switchboard)
  BIN="$ROOT/target/debug/switchboard"
fi
LOG="$(mktemp)"
"$BIN" serve --listen 127.0.0.1:0 >"$LOG" 2>&1 &
SRV=$!
trap 'kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; rm -f "$LOG"' EXIT
ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$LOG" | head -1)"
  [ -n "$ADDR" ] && break
  kill -0 "$SRV" 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "server did not start"; cat "$LOG"; exit 1; }
timeout 120 "$VENV/bin/python" -u interop.py "http://$ADDR"
