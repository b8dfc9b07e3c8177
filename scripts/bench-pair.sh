#!/usr/bin/env bash
# scripts/bench-pair.sh — a same-run pair: one `switchboard bench` mode against two server
# builds, alternately (A, B, A, B, ...), each run on a fresh server process pinned to CPU
# $SERVER_CPU with the generator pinned to CPU $GEN_CPU. JSON lines, labelled with A's and
# B's labels, are appended to OUT; `cat /proc/loadavg` before each run goes to stderr.
#
#   scripts/bench-pair.sh OUT ROUNDS 'LABEL_A|SERVER_CMD_A' 'LABEL_B|SERVER_CMD_B' MODE ARGS...
#
# SERVER_CMD is run with {ADDR} replaced by the run's loopback address, e.g.
#   'before|/tmp/a/switchboard serve --listen {ADDR}'
#   'after|/tmp/b/switchboard serve --listen {ADDR} --config bench.toml'
# The generator is GEN (default: the `switchboard` on PATH or target/release/switchboard).
#
# More than two sides may be given (every argument holding a `|` before MODE is one);
# each round runs them all in order.
set -euo pipefail
OUT=$1 ROUNDS=$2
shift 2
SIDES=()
while [[ $# -gt 0 && $1 == *"|"* ]]; do SIDES+=("$1"); shift; done
[[ ${#SIDES[@]} -ge 2 && $# -ge 1 ]] || { echo "usage: bench-pair.sh OUT ROUNDS 'A|CMD' 'B|CMD' [...] MODE ARGS..." >&2; exit 2; }
MODE=$1
shift
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
GEN=${GEN:-$(command -v switchboard || echo target/release/switchboard)}
port=${PORT_BASE:-9400}
for round in $(seq 1 "$ROUNDS"); do
  for side in "${SIDES[@]}"; do
    label=${side%%|*} cmd=${side#*|}
    port=$((port + 1))
    addr=127.0.0.1:$port
    echo "== round $round $label $MODE $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    timeout 600 taskset -c "$GEN_CPU" "$GEN" bench "$MODE" --addr "$addr" \
      --server-cmd "${cmd//\{ADDR\}/$addr}" --server-cpu "$SERVER_CPU" --label "$label" "$@" \
      | tee -a "$OUT"
  done
done
