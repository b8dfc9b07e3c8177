#!/usr/bin/env bash
# run.sh [server|client|both] [quick|all|CASE-PATTERN...] [--update]
#
# Runs Autobahn|Testsuite (wstest) against Switchboard and compares every case's verdict
# with the committed expected-server.json / expected-client.json.
#   server  wstest is the client (fuzzingclient) and connects to `switchboard echo`
#   client  wstest is the server (fuzzingserver); ws-tokio's example `autobahn_client`
#           connects to it, runs every case and echoes
#   both    server, then client (default)
# Selection (default quick): "quick" = groups 1-10 plus the five smallest sizes of every
# 12.x/13.x sub-group (361 cases, ~1 min per side); "all" = all 517 cases (~11 min per
# side: wstest itself is the bottleneck with compression); or patterns such as "9 12.1 7.13.2".
# --update rewrites the expected files with this run's verdicts (review the diff!).
# Each side ends with "autobahn-<side>: N passed, M failed"; exit 0 only when every side
# has M = 0. Reports (HTML too) go to $AUTOBAHN_REPORTS (default target/autobahn/<side>).
# Settings: AUTOBAHN_TIMEOUT (seconds per side; default 900 quick, 3600 otherwise),
# CARGO_PROFILE (default release).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

SIDE=both
UPDATE=()
WORDS=()
for arg in "$@"; do
  case "$arg" in
    server|client|both) SIDE=$arg ;;
    --update) UPDATE=(--update) ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) WORDS+=("$arg") ;;
  esac
done
[ ${#WORDS[@]} -gt 0 ] || WORDS=(quick)
if [ "${WORDS[*]}" = quick ]; then TIMEOUT=${AUTOBAHN_TIMEOUT:-900}; else TIMEOUT=${AUTOBAHN_TIMEOUT:-3600}; fi
REPORTS=${AUTOBAHN_REPORTS:-$ROOT/target/autobahn}
PROFILE=${CARGO_PROFILE:-release}
AGENT=switchboard

WSTEST=$("$HERE/install.sh" | tail -1)
WSTEST_PY=$(dirname "$WSTEST")/python

cd "$ROOT"
if [ "$SIDE" != client ]; then
  cargo build --locked --profile "$PROFILE" -q -p switchboard-server --bin switchboard
fi
if [ "$SIDE" != server ]; then
  cargo build --locked --profile "$PROFILE" -q -p switchboard-ws-tokio --example autobahn_client
fi
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
PROFILE_DIR=$PROFILE; [ "$PROFILE" = dev ] && PROFILE_DIR=debug
SERVER_BIN=$TARGET_DIR/$PROFILE_DIR/switchboard
CLIENT_BIN=$TARGET_DIR/$PROFILE_DIR/examples/autobahn_client

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {  # $1 = port; up to 15 s
  local _
  for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

stop() {  # $1 = pid of a process this script started
  if kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
}

write_spec() {  # $1 = file, $2 = mode, $3 = url, $4 = outdir, $5 = case list
  python3 - "$@" "$AGENT" <<'PY'
import json, sys
path, mode, url, outdir, case_file, agent = sys.argv[1:7]
cases = [l.strip() for l in open(case_file) if l.strip()]
spec = {"outdir": outdir, "cases": cases, "exclude-cases": [], "exclude-agent-cases": {}}
if mode == "fuzzingclient":
    spec["servers"] = [{"agent": agent, "url": url}]
else:
    spec["url"] = url
json.dump(spec, open(path, "w"), indent=1)
PY
}

prepare() {  # $1 = side: fresh report dir with the case list
  OUT=$REPORTS/$1
  rm -rf "$OUT" && mkdir -p "$OUT"
  (cd / && "$WSTEST_PY" "$HERE/cases.py" "${WORDS[@]}") > "$OUT/cases.txt"
  PORT=$(free_port)
  URL=ws://127.0.0.1:$PORT
}

verdicts() {  # $1 = side
  python3 "$HERE/verdicts.py" "$OUT" --cases "$OUT/cases.txt" \
    --expected "$HERE/expected-$1.json" --label "autobahn-$1" "${UPDATE[@]}"
}

run_server_side() {
  prepare server
  write_spec "$OUT/spec.json" fuzzingclient "$URL" "$OUT" "$OUT/cases.txt"
  RUST_LOG=${RUST_LOG:-warn} "$SERVER_BIN" echo --listen "127.0.0.1:$PORT" > "$OUT/server.log" 2>&1 &
  local spid=$! start rc=0
  wait_port "$PORT" || echo "switchboard echo did not start listening; see $OUT/server.log"
  echo "autobahn server suite: $(wc -l < "$OUT/cases.txt") cases against $URL, reports in $OUT"
  start=$(date +%s)
  (cd "$OUT" && exec timeout --kill-after=10 "$TIMEOUT" "$WSTEST" -m fuzzingclient -s spec.json) \
    > "$OUT/wstest.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || echo "wstest exited with status $rc (timeout ${TIMEOUT}s); see $OUT/wstest.log"
  kill -0 "$spid" 2>/dev/null || echo "switchboard echo died during the run; see $OUT/server.log"
  stop "$spid"
  echo "wall time: $(( $(date +%s) - start ))s"
  verdicts server
}

run_client_side() {
  local wpid start rc=0 tries
  # The free port can be taken (as an ephemeral port of another program's connection)
  # before wstest binds it: try another.
  for tries in 1 2 3; do
    prepare client
    write_spec "$OUT/spec.json" fuzzingserver "$URL" "$OUT" "$OUT/cases.txt"
    (cd "$OUT" && exec "$WSTEST" -m fuzzingserver -s spec.json -u 0) > "$OUT/wstest.log" 2>&1 &
    wpid=$!
    wait_port "$PORT" && break
    echo "wstest fuzzingserver did not start on port $PORT (try $tries); see $OUT/wstest.log"
    stop "$wpid"
  done
  echo "autobahn client suite: $(wc -l < "$OUT/cases.txt") cases served at $URL, reports in $OUT"
  start=$(date +%s)
  RUST_LOG=${RUST_LOG:-warn} timeout --kill-after=10 "$TIMEOUT" \
    "$CLIENT_BIN" --url "$URL" --agent "$AGENT" > "$OUT/client.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    echo "autobahn_client exited with status $rc; see $OUT/client.log"
    # still ask for the report so that the cases that did run are graded
    timeout 120 "$CLIENT_BIN" --url "$URL" --agent "$AGENT" --update-reports-only \
      >> "$OUT/client.log" 2>&1 || true
  fi
  stop "$wpid"
  echo "wall time: $(( $(date +%s) - start ))s"
  verdicts client
}

status=0
case "$SIDE" in
  server) run_server_side || status=1 ;;
  client) run_client_side || status=1 ;;
  both)
    run_server_side || status=1
    run_client_side || status=1 ;;
esac
exit "$status"
