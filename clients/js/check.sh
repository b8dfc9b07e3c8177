#!/usr/bin/env bash
# CI for the browser client: `npm ci`, the committed dist/ must be what the sources build
# to (and within the size limit), then the unit tests. Prints "js-bundle: …" and
# "js-client: N passed, M failed" (the lines scripts/test.sh counts).
set -uo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error || exit 1
rc=0
if node build.mjs --check; then
  echo "js-bundle: 1 passed, 0 failed"
else
  echo "js-bundle: 0 passed, 1 failed"
  rc=1
fi
node node_modules/typescript/bin/tsc -p . || rc=1
node test.mjs || rc=1
exit $rc
