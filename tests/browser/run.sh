#!/usr/bin/env bash
# Headless Chromium tests against real `switchboard serve` processes they start, restart
# and stop themselves: the demo pages (chat.e2e.mjs) and the browser client over every
# transport, through loopback proxies that refuse WebSocket or hold streams back
# (sdk.e2e.mjs), and the live status page (status.e2e.mjs). Installs what is missing (Debian chromium via apt, playwright-core via
# `npm ci`; never a browser download). Each prints "NAME: N passed, M failed".
# Exit code = test result. SWITCHBOARD_BIN overrides the binary (default: cargo build).
set -uo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund --loglevel=error || exit 1
fi
if [ -z "${SWITCHBOARD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q -p switchboard-server --bin switchboard) || exit 1
  SWITCHBOARD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/switchboard"
fi
export SWITCHBOARD_BIN
rc=0
node chat.e2e.mjs || rc=1
node sdk.e2e.mjs || rc=1
node status.e2e.mjs || rc=1
exit $rc
