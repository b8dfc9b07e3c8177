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
# shellcheck source=../../scripts/lib/serve.sh
source "$ROOT/scripts/lib/serve.sh"
start_switchboard "$ROOT"
node chat.e2e.mjs "http://$ADDR"
