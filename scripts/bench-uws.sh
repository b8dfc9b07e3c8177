#!/usr/bin/env bash
# scripts/bench-uws.sh — issue 17's table: Switchboard against the uWebSockets peer
# (scripts/build-uws.sh first), row by row, the two servers interleaved (A, B, A, B, … by
# scripts/bench-pair.sh), a fresh server process per run pinned to CPU $SERVER_CPU, the
# generator pinned to CPU $GEN_CPU, default settings (no batch window). Rows: fan-out
# 10,000 × 100/s, 5,000 × 100/s and 10,000 × 10/s of 64 B (WebSocket subscribers, one
# HTTP POST publisher), echo of 100 connections × 32 B at windows 1 and 8, and 19,000
# idle WebSocket connections. JSON lines go to OUT; the load average before each run to
# stderr.
#
#   scripts/bench-uws.sh [OUT.jsonl]     (default docs/perf/results-10-uws.jsonl)
#   ROUNDS=2 DUR=10 IDLE_N=19000 IDLE_HOLD=40 scripts/bench-uws.sh
#   SB_BIN=/path/to/switchboard          (the Switchboard build to measure; default: this tree's)
#   SB_BEFORE=/path/to/switchboard       (also an earlier build, labelled switchboard-before,
#                                         in the same rounds: before, after and uWebSockets)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/perf/results-10-uws.jsonl}
ROUNDS=${ROUNDS:-1}
DUR=${DUR:-10}
IDLE_N=${IDLE_N:-19000}
IDLE_HOLD=${IDLE_HOLD:-40}
UWS_PEER=${UWS_PEER:-target/uws/uws-peer}
[[ -x "$UWS_PEER" ]] || { echo "no $UWS_PEER: run scripts/build-uws.sh first" >&2; exit 2; }
source scripts/lib/bench-bin.sh
bench_bin
cp "$UWS_PEER" "$BIN/uws-peer"
BEFORE=() BEFORE_ECHO=()
if [[ -n "${SB_BEFORE:-}" ]]; then
  cp "$SB_BEFORE" "$BIN/switchboard-before"
  BEFORE=("switchboard-before|$BIN/switchboard-before serve --listen {ADDR} --config $BIN/bench.toml")
  BEFORE_ECHO=("switchboard-before|$BIN/switchboard-before echo --no-deflate --listen {ADDR}")
fi
# The generator opens every connection from 127.0.0.1…: lift the per-address limit.
printf '[limits]\nmax_connections_per_ip = 0\n' > "$BIN/bench.toml"
SB="switchboard|$BIN/switchboard serve --listen {ADDR} --config $BIN/bench.toml"
SB_ECHO="switchboard|$BIN/switchboard echo --no-deflate --listen {ADDR}"
UWS="uwebsockets|$BIN/uws-peer {ADDR}"
export GEN="$BIN/switchboard"
: > "$OUT"
# Each row's runs take ports from their own block of 3 × ROUNDS.
port=${PORT_BASE:-9300}
pair() {
  PORT_BASE=$port scripts/bench-pair.sh "$OUT" "$ROUNDS" "$@"
  port=$((port + 3 * ROUNDS))
}
for row in "10000 100" "5000 100" "10000 10"; do
  read -r n rate <<< "$row"
  pair "${BEFORE[@]}" "$SB" "$UWS" fanout --subscribers "$n" --rate "$rate" --size 64 \
    --publisher http --sources 4 --duration "$DUR" --drain 10
done
for w in 1 8; do
  pair "${BEFORE_ECHO[@]}" "$SB_ECHO" "$UWS" echo --connections 100 --size 32 --window "$w" --duration "$DUR"
done
pair "${BEFORE[@]}" "$SB" "$UWS" idle --connections "$IDLE_N" --per-process 9500 --sources 4 --hold "$IDLE_HOLD"
echo "results in $OUT" >&2
