#!/usr/bin/env bash
# Runs the issue-4 measurements: echo (windows 1 and 8), fan-out (1k and 10k WebSocket
# subscribers, the latency run, SSE / stream / long-poll), idle memory at up to 19,000
# connections, each against Switchboard and the tokio-tungstenite and fastwebsockets
# baselines in the same run, and against the uWebSockets peer when it is built
# (scripts/build-uws.sh; $UWS_PEER, default target/uws/uws-peer). Loopback only; every server is started and stopped by the
# generator (by PID); the server is pinned to CPU $SERVER_CPU and the generator to CPU
# $GEN_CPU.
#
#   scripts/bench.sh [OUT.jsonl]      (default docs/perf/results.jsonl)
#   QUICK=1 scripts/bench.sh          (short runs, fewer connections: a smoke test)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/perf/results.jsonl}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
DUR=${DUR:-10}
IDLE_N=${IDLE_N:-19000}
# Longer than the server's 30 s ping interval: the after-hold figure is then what an idle
# connection keeps once it has answered a ping.
IDLE_HOLD=${IDLE_HOLD:-40}
BIG=${BIG:-10000}
if [[ -n "${QUICK:-}" ]]; then DUR=2; IDLE_N=2000; BIG=2000; IDLE_HOLD=2; fi

cargo build --release -p switchboard-server -p switchboard-bench >&2
# Copies, so that a concurrent rebuild of target/ cannot swap a binary mid-run.
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
cp target/release/{switchboard,baseline-tungstenite,baseline-fastws} "$BIN/"
UWS_PEER=${UWS_PEER:-target/uws/uws-peer}
if [[ -x "$UWS_PEER" ]]; then cp "$UWS_PEER" "$BIN/uws-peer"; fi
: > "$OUT"

port=9200
# run MODE LABEL SERVER-COMMAND-WITH-{ADDR} ARGS...
run() {
  local mode=$1 label=$2 cmd=$3; shift 3
  port=$((port + 1))
  local addr=127.0.0.1:$port
  echo "== $mode $label $*" >&2
  timeout 300 taskset -c "$GEN_CPU" "$BIN/switchboard" bench "$mode" \
    --addr "$addr" --server-cmd "${cmd//\{ADDR\}/$addr}" --server-cpu "$SERVER_CPU" \
    --label "$label" "$@" | tee -a "$OUT"
}
# The load generator opens every connection from 127.0.0.1: lift the per-address limit.
printf '[limits]\nmax_connections_per_ip = 0\n' > "$BIN/bench.toml"
SB="$BIN/switchboard serve --listen {ADDR} --config $BIN/bench.toml"
SB_ECHO="$BIN/switchboard echo --no-deflate --listen {ADDR}"
TT="$BIN/baseline-tungstenite --listen {ADDR}"
FW="$BIN/baseline-fastws --listen {ADDR}"
# The servers compared at each row: Switchboard, the baselines, and uWebSockets if built.
PEERS=("tungstenite|$TT" "fastwebsockets|$FW")
if [[ -x "$BIN/uws-peer" ]]; then PEERS+=("uwebsockets|$BIN/uws-peer {ADDR}"); fi

# The kernel's cost of one loopback write on this machine: what every figure below sits on.
echo "== floor" >&2
taskset -c "$SERVER_CPU" "$BIN/switchboard" bench floor | tee -a "$OUT"
# Window 1 (one message in flight per connection: a read and a write per echo) is the
# target's case; window 8 shows what each server makes of pipelined messages.
for w in 1 8; do
  for s in "switchboard|$SB_ECHO" "${PEERS[@]}"; do
    run echo "${s%%|*}" "${s#*|}" --connections 100 --size 32 --window "$w" --duration "$DUR"
  done
done
for n in 1000 "$BIG"; do
  for s in "switchboard|$SB" "${PEERS[@]}"; do
    run fanout "${s%%|*}" "${s#*|}" --subscribers "$n" --rate 100 --size 64 --duration "$DUR"
  done
done
# The 10,000-subscriber load again with a batch window (namespace `batch_window_ms`):
# fewer, fuller writes for up to that much added latency.
for w in 100 150; do
  printf 'demo = false\n[limits]\nmax_connections_per_ip = 0\n[namespaces.default]\nbatch_window_ms = %s\n' "$w" > "$BIN/batch-$w.toml"
  run fanout "switchboard-batch-${w}ms" "$BIN/switchboard serve --listen {ADDR} --config $BIN/batch-$w.toml" \
    --subscribers "$BIG" --rate 100 --size 64 --duration "$DUR"
done
for s in "switchboard|$SB" "${PEERS[@]}"; do
  run fanout "${s%%|*}" "${s#*|}" --subscribers "$BIG" --rate 10 --size 64 --duration "$DUR"
done
for t in sse stream longpoll ws-deflate; do
  run fanout switchboard "$SB" --transport "$t" --subscribers 1000 --rate 100 --size 64 --duration "$DUR"
done
# The same at 25 msgs/s, which no transport saturates on a slower machine (at 100/s every
# transport can be pinned at one core, which hides the difference): one message per
# long-poll answer, the dearest case.
for t in ws sse stream longpoll; do
  run fanout switchboard "$SB" --transport "$t" --subscribers 1000 --rate 25 --size 64 --duration "$DUR"
done
for s in "switchboard|$SB" "${PEERS[@]}"; do
  run idle "${s%%|*}" "${s#*|}" --connections "$IDLE_N" --per-process 9500 --sources 4 --hold "$IDLE_HOLD"
done
run idle switchboard "$SB" --kind sse --connections "$IDLE_N" --per-process 9500 --sources 4 --hold "$IDLE_HOLD"
echo "results in $OUT" >&2
