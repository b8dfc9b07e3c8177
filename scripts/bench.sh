#!/usr/bin/env bash
# The whole suite in one run, every server started and stopped by the generator (by PID),
# loopback only:
#   - floor: the kernel's cost of one small loopback write;
#   - echo, 100 connections × 32 B, windows 1 and 8;
#   - fan-out of 64 B to WebSocket subscribers with one HTTP publisher: 1,000 × 100/s and
#     issue 17's rows, 10,000 × 100/s, 5,000 × 100/s and 10,000 × 10/s; the 10,000 × 100/s
#     load again with a batch window;
#   - idle memory at 19,000 WebSocket connections, and SSE;
#   each against Switchboard, an earlier Switchboard build when given ($SB_BEFORE), the
#   tokio-tungstenite and fastwebsockets baselines, and the uWebSockets peer when it is
#   built (scripts/build-uws.sh; $UWS_PEER, default target/uws/uws-peer). Switchboard alone:
#   - SSE, HTTP streaming, long-polling and deflate fan-out at 1,000 × 100/s and × 25/s;
#   - deflate against plain WebSocket at 5,000 × 5/s and × 100/s (issue 17, goal 4);
#   - one event loop against two with the server and the generator sharing CPUs 0–1 and
#     the subscribers in 4 generator processes, 10,000 × 100/s and × 10/s (goal 5);
#   - the quantum report, every transport and compact form at 1,000 clients (goal 3).
# The server is pinned to CPU $SERVER_CPU and the generator to CPU $GEN_CPU (but for the
# goal-5 rows). JSON lines go to OUT, the quantum table and chart to $QUANTUM_OUT.
#
#   scripts/bench.sh [OUT.jsonl]      (default docs/perf/results.jsonl; ~20 minutes here)
#   QUICK=1 scripts/bench.sh          (short runs, fewer connections: a smoke test)
#   SB_BIN=/path/to/switchboard       (the Switchboard build to measure; default: this tree's)
#   SB_BEFORE=/path/to/switchboard    (an earlier build too, labelled switchboard-before)
#   QUANTUM_OUT=docs/perf/quantum.md  (default: a temporary directory, so only the lines stay)
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
MID=${MID:-5000}
SMALL=${SMALL:-1000}
DRAIN=10
if [[ -n "${QUICK:-}" ]]; then DUR=2; IDLE_N=2000; BIG=2000; MID=1000; SMALL=200; IDLE_HOLD=2; DRAIN=2; fi

cargo build --release --locked -p switchboard-bench >&2
source scripts/lib/bench-bin.sh
bench_bin
cp target/release/{baseline-tungstenite,baseline-fastws} "$BIN/"
UWS_PEER=${UWS_PEER:-target/uws/uws-peer}
if [[ -x "$UWS_PEER" ]]; then cp "$UWS_PEER" "$BIN/uws-peer"; fi
QUANTUM_OUT=${QUANTUM_OUT:-$BIN/quantum.md}
: > "$OUT"

port=${PORT_BASE:-9200}
# on SERVER-CPUS GEN-CPUS MODE LABEL SERVER-COMMAND-WITH-{ADDR} ARGS...: the generator
# puts the address in for {ADDR} (quantum: a port after it for each transport, so it
# runs last).
on() {
  local scpu=$1 gcpu=$2 mode=$3 label=$4 cmd=$5; shift 5
  port=$((port + 1))
  local addr=127.0.0.1:$port
  echo "== $mode $label $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  timeout 600 taskset -c "$gcpu" "$BIN/switchboard" bench "$mode" \
    --addr "$addr" --server-cmd "$cmd" --server-cpu "$scpu" \
    --label "$label" "$@" | tee -a "$OUT"
}
# run MODE LABEL SERVER-COMMAND-WITH-{ADDR} ARGS...: the server and the generator apart.
run() { on "$SERVER_CPU" "$GEN_CPU" "$@"; }
# The load generator opens every connection from 127.0.0.1: lift the per-address limit.
printf '[limits]\nmax_connections_per_ip = 0\n' > "$BIN/bench.toml"
SB="$BIN/switchboard serve --listen {ADDR} --config $BIN/bench.toml"
SB_ECHO="$BIN/switchboard echo --no-deflate --listen {ADDR}"
# The servers compared at each row: Switchboard, the build before, the baselines, and
# uWebSockets if built.
SERVE=("switchboard|$SB") ECHO=("switchboard|$SB_ECHO")
if [[ -n "${SB_BEFORE:-}" ]]; then
  cp "$SB_BEFORE" "$BIN/switchboard-before"
  SERVE+=("switchboard-before|$BIN/switchboard-before serve --listen {ADDR} --config $BIN/bench.toml")
  ECHO+=("switchboard-before|$BIN/switchboard-before echo --no-deflate --listen {ADDR}")
fi
PEERS=("tungstenite|$BIN/baseline-tungstenite --listen {ADDR}" "fastwebsockets|$BIN/baseline-fastws --listen {ADDR}")
if [[ -x "$BIN/uws-peer" ]]; then PEERS+=("uwebsockets|$BIN/uws-peer {ADDR}"); fi
# Issue 17's fan-out: 64 B to WebSocket subscribers, loopback sources enough for the
# connections, time for the slowest server to deliver, and one HTTP publisher (a
# WebSocket one for the two baselines, which take no POST).
FAN=(--size 64 --sources 4 --duration "$DUR" --drain "$DRAIN")
publisher() { case $1 in tungstenite|fastwebsockets) echo ws ;; *) echo http ;; esac; }

# The kernel's cost of one loopback write on this machine: what every figure below sits on.
echo "== floor" >&2
taskset -c "$SERVER_CPU" "$BIN/switchboard" bench floor | tee -a "$OUT"
# Window 1 (one message in flight per connection: a read and a write per echo) is the
# common case; window 8 shows what each server makes of pipelined messages.
for w in 1 8; do
  for s in "${ECHO[@]}" "${PEERS[@]}"; do
    run echo "${s%%|*}" "${s#*|}" --connections 100 --size 32 --window "$w" --duration "$DUR"
  done
done
for row in "$SMALL 100" "$BIG 100" "$MID 100" "$BIG 10"; do
  read -r n rate <<< "$row"
  for s in "${SERVE[@]}" "${PEERS[@]}"; do
    run fanout "${s%%|*}" "${s#*|}" --subscribers "$n" --rate "$rate" "${FAN[@]}" \
      --publisher "$(publisher "${s%%|*}")"
  done
done
# The 10,000-subscriber load again with a batch window (namespace `batch_window_ms`):
# fewer, fuller writes for up to that much added latency.
for w in 100 150; do
  printf 'demo = false\n[limits]\nmax_connections_per_ip = 0\n[namespaces.default]\nbatch_window_ms = %s\n' "$w" > "$BIN/batch-$w.toml"
  run fanout "switchboard-batch-${w}ms" "$BIN/switchboard serve --listen {ADDR} --config $BIN/batch-$w.toml" \
    --subscribers "$BIG" --rate 100 "${FAN[@]}" --publisher http
done
for t in sse stream longpoll ws-deflate; do
  run fanout switchboard "$SB" --transport "$t" --subscribers "$SMALL" --rate 100 --size 64 --duration "$DUR"
done
# The same at 25 msgs/s, which no transport saturates on a slower machine (at 100/s every
# transport can be pinned at one core, which hides the difference): one message per
# long-poll answer, the dearest case.
for t in ws sse stream longpoll; do
  run fanout switchboard "$SB" --transport "$t" --subscribers "$SMALL" --rate 25 --size 64 --duration "$DUR"
done
# Goal 4: every subscriber with permessage-deflate against none, alternately.
for rate in 5 100; do
  for t in ws ws-deflate; do
    run fanout switchboard "$SB" --transport "$t" --subscribers "$MID" --rate "$rate" "${FAN[@]}" --publisher http
  done
done
# Goal 5: one event loop against two, the server and the generator sharing both cores;
# the subscribers in 4 generator processes, so that the generator keeps up (REPORT.md,
# "A second core: the generator's").
printf '[limits]\nmax_connections_per_ip = 0\nmax_publishes_per_second = 0\n' > "$BIN/cores.toml"
for rate in 100 10; do
  for w in 1 2; do
    on 0,1 0,1 fanout "switchboard-loops-$w" "$BIN/switchboard serve --listen {ADDR} --config $BIN/cores.toml --workers $w" \
      --subscribers "$BIG" --rate "$rate" "${FAN[@]}" --publisher http --processes 4
  done
done
for s in "${SERVE[@]}" "${PEERS[@]}"; do
  run idle "${s%%|*}" "${s#*|}" --connections "$IDLE_N" --per-process 9500 --sources 4 --hold "$IDLE_HOLD"
done
run idle switchboard "$SB" --kind sse --connections "$IDLE_N" --per-process 9500 --sources 4 --hold "$IDLE_HOLD"
# Goal 3: bytes, latency and CPU per message for every transport and compact form.
run quantum switchboard "$SB" --clients "$SMALL" --duration "$DUR" --sources 2 --out "$QUANTUM_OUT"
echo "results in $OUT" >&2
