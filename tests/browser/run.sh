#!/usr/bin/env bash
# Headless Chromium test of the demo pages against a real `switchboard serve`.
# Installs what is missing (Debian chromium via apt, playwright-core via `npm ci`; never a
# browser download), starts the server on a free loopback port, runs the checks, stops it.
# Exit code = test result. SWITCHBOARD_BIN overrides the binary (default: cargo build).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund --loglevel=error
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
node chat.e2e.mjs "http://$ADDR"
