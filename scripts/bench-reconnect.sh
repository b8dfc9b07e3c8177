#!/usr/bin/env bash
# scripts/bench-reconnect.sh — admission control under a reconnect storm (issue 13):
# `switchboard bench reconnect` with the server killed (SIGKILL) and started again on the
# same port under N subscribers (70 % WebSocket, 30 % SSE) and a WebSocket control group,
# every client back within one second from its cursor. Each round runs admission on
# (`limits.max_new_connections_per_second = RATE`) and off, alternately, on a fresh server
# pinned to CPU $SERVER_CPU with the generator pinned to CPU $GEN_CPU.
#
# With redis-server on PATH, the server runs on a Redis started here on loopback (pinned
# to the server's CPU, stopped by PID at the end, flushed before every run), so history survives the restart and the
# check expects every message; without it, on the in-memory broker, where the restart is
# a new epoch and every resume is answered `reset`.
#
#   scripts/bench-reconnect.sh [OUT.jsonl]     (default docs/perf/results-8-reconnect.jsonl)
#   QUICK=1 scripts/bench-reconnect.sh OUT     (300 clients, short windows: a smoke test)
#   ROUNDS=2 RATE=2000 BROKER=memory ...       (the defaults: 1 round, 2000/s, redis if found)
#   SDK_RULE=1 ...                             (a third run per round: admission on, the
#                                               clients retrying by the browser SDK's rule)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/perf/results-8-reconnect.jsonl}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
ROUNDS=${ROUNDS:-1}
RATE=${RATE:-2000}
CLIENTS=${CLIENTS:-10000}
CONTROL=${CONTROL:-500}
WINDOWS=(--before 5 --after 5)
if [[ -n "${QUICK:-}" ]]; then CLIENTS=300; CONTROL=20; RATE=100; WINDOWS=(--before 1 --after 1); fi
BROKER=${BROKER:-$(command -v redis-server >/dev/null && echo redis || echo memory)}

FEATURES=()
[[ $BROKER == redis ]] && FEATURES=(--features redis)
cargo build --release -p switchboard-server "${FEATURES[@]}" >&2
# A copy, so that a concurrent rebuild of target/ cannot swap the binary mid-run.
BIN=$(mktemp -d)
REDIS_PID=
cleanup() {
  [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  rm -rf "$BIN"
}
trap cleanup EXIT
cp target/release/switchboard "$BIN/"

SERVE_EXTRA=
if [[ $BROKER == redis ]]; then
  REDIS_PORT=${REDIS_PORT:-16379}
  # Redis is the server's side: it shares the server's CPU.
  taskset -c "$SERVER_CPU" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$BIN" >"$BIN/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  SERVE_EXTRA="--redis redis://127.0.0.1:$REDIS_PORT"
fi
# The generator opens every connection from a few loopback addresses: no per-address limit.
printf '[limits]\nmax_connections_per_ip = 0\nmax_new_connections_per_second = %s\n' "$RATE" > "$BIN/on.toml"
printf '[limits]\nmax_connections_per_ip = 0\n' > "$BIN/off.toml"

port=${PORT_BASE:-9600}
for round in $(seq 1 "$ROUNDS"); do
  sides=("admission-$RATE|on|jitter" "admission-off|off|jitter")
  [[ -n ${SDK_RULE:-} ]] && sides+=("admission-$RATE-sdk-rule|on|sdk")
  for side in "${sides[@]}"; do
    IFS='|' read -r label config rule <<<"$side"
    port=$((port + 1))
    addr=127.0.0.1:$port
    [[ $BROKER == redis ]] && redis-cli -p "$REDIS_PORT" flushall >/dev/null
    echo "== round $round $label $BROKER (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    timeout 900 taskset -c "$GEN_CPU" "$BIN/switchboard" bench reconnect --addr "$addr" \
      --server-cmd "$BIN/switchboard serve --listen {ADDR} --config $BIN/$config.toml $SERVE_EXTRA" \
      --server-cpu "$SERVER_CPU" --label "$label-$BROKER" \
      --clients "$CLIENTS" --control "$CONTROL" --per-process 5000 --sources 4 \
      --over-ms 1000 --signal kill --retry-rule "$rule" "${WINDOWS[@]}" | tee -a "$OUT"
  done
done
echo "results in $OUT" >&2
