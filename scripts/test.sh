#!/usr/bin/env bash
# scripts/test.sh — run every test of the project and print one summary line.
#
# Steps (each runs even if an earlier one failed):
#   cargo test --workspace (the Redis broker's tests start a redis-server, installed with
#   apt if missing), cargo test -p switchboard-ws --features hixie76, the server's
#   multi-node and node-failure tests with --features redis (one Redis, a Redis Cluster), the TLS tests with --features tls,
#   every benchmark compiled (test profile), the Autobahn conformance suites in
#   `quick` mode, server and client side, compared with the committed expected verdicts,
#   a short fuzz smoke run of every fuzz target (codec and protocol), the browser client's
#   checks (its committed bundle rebuilt and compared, its unit tests), the interop tests
#   (Python websockets, curl) and the headless-Chromium tests (demos and browser client),
#   and the checks of deploy/ (scripts/check-deploy.sh: hadolint, systemd-analyze verify).
# Every step prints counts; the last line is "N passed, M failed", summed over cargo's
# "test result:" lines and the Autobahn summaries (a step that fails without printing a
# count, e.g. a compile error, counts as one failure). Exit status 0 only when M is 0.
# Logs: target/test-logs/<step>.log. Set AUTOBAHN_MODE=all for the full 517-case suites.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOGS=$ROOT/target/test-logs
mkdir -p "$LOGS"
PASSED=0
FAILED=0

# step NAME COMMAND... — run, show the output, add its counts to the totals
step() {
  local name=$1 rc=0 p f start
  shift
  echo "==> $name: $*"
  start=$(date +%s)
  "$@" 2>&1 | tee "$LOGS/$name.log" || rc=$?
  # cargo: "test result: ok. 12 passed; 0 failed; ..."; autobahn and hooks: "...: N passed, M failed"
  read -r p f < <(sed -nE \
    -e 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p' \
    -e 's/^([A-Za-z0-9_-]+: )?([0-9]+) passed, ([0-9]+) failed$/\2 \3/p' \
    "$LOGS/$name.log" | awk '{p += $1; f += $2} END {print p + 0, f + 0}')
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  echo "<== $name: $p passed, $f failed, exit $rc, $(( $(date +%s) - start ))s"
}

# The Redis broker's tests start their own redis-server, and make a Redis Cluster with
# redis-cli (crates/redis/src/test_server.rs); Debian's redis-server brings redis-cli.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "==> installing redis-server (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

step cargo-test cargo test --workspace --locked
step cargo-test-hixie76 cargo test -p switchboard-ws --features hixie76 --locked
step cargo-test-redis-nodes cargo test -p switchboard-server --features redis --test redis_nodes --locked
step cargo-test-redis-cluster cargo test -p switchboard-server --features redis --test redis_cluster --locked
step cargo-test-redis-failure cargo test -p switchboard-server --features redis --test redis_failure --locked
step cargo-test-tls cargo test -p switchboard-server --features tls --test tls --locked
# Every benchmark still compiles (in the test profile: the dependencies cargo test built
# are reused, where `cargo bench --no-run` rebuilt them all optimized, ~7 minutes).
step cargo-bench-build cargo test --workspace --benches --no-run --locked
step autobahn ./conformance/autobahn/run.sh both "${AUTOBAHN_MODE:-quick}"

# ---- fuzz: every cargo-fuzz target (codec and protocol) runs briefly on a copy of its
# committed seed corpus (installs cargo-fuzz if missing; nightly if present, else RUSTC_BOOTSTRAP=1).
step fuzz-smoke env FUZZ_SECONDS="${FUZZ_SECONDS:-15}" ./scripts/fuzz-smoke.sh
# ---- server: interop (Python websockets, curl -N, plain GETs) and headless Chromium on the
# demo pages and the browser client, against real `switchboard serve` processes; each
# installs what it needs (venv + pip, apt chromium, npm ci) and prints "NAME: N passed, M failed".
# The binary cargo test built: the scripts would otherwise build it again with the
# server's own feature set (a second pass over every dependency).
if [ -x "$ROOT/target/debug/switchboard" ]; then
  export SWITCHBOARD_BIN="$ROOT/target/debug/switchboard"
fi
step interop ./tests/interop/run.sh
# ---- deploy/: hadolint on the Dockerfile, systemd-analyze verify on the unit, and what
# each must keep (non-root, HEALTHCHECK on /health, Restart=on-failure, ...); prints
# "deploy: N passed, M failed". No container is built (that needs a running engine).
step deploy ./scripts/check-deploy.sh
# ---- the browser client (clients/js): npm ci, dist/ rebuilt and compared with the
# committed files (so they cannot drift; over 12 KB min+gzip fails), vitest unit tests.
step js-client ./clients/js/check.sh
step browser ./tests/browser/run.sh
# ----------------------------------------------------------------------------------------

echo "$PASSED passed, $FAILED failed" | tee "$LOGS/summary"
[ "$FAILED" = 0 ]
