#!/usr/bin/env bash
# scripts/bench-cores.sh — issue 17's goal 5: one and two event loops (`serve --workers N`)
# with the server and the load generator sharing both cores (CPUs 0–1), 10,000 WebSocket
# subscribers at 10, 50 and 100 messages a second, and the subscribers in one generator
# process or split over several (`bench fanout --processes`). Each row is a same-run pair
# (one loop, two loops, alternately, a fresh server per run); JSON lines go to OUT.
#
#   scripts/bench-cores.sh [OUT.jsonl]      (default docs/perf/results-17-cores.jsonl)
#   ROUNDS=2 DUR=10 PROCESSES="1 4" RATES="10 50 100" scripts/bench-cores.sh
#   SB_BIN=/path/to/switchboard             (the build to measure; default: this tree's)
#
# Why the generator's processes: on loopback the server's `send` runs the receiving side
# of TCP too, and one generator thread falls behind once two loops take a share of its
# core, which makes each of the server's sends dearer (docs/perf/REPORT.md, "A second
# core: the generator's").
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/perf/results-17-cores.jsonl}
ROUNDS=${ROUNDS:-2}
DUR=${DUR:-10}
PROCESSES=${PROCESSES:-1 4}
RATES=${RATES:-10 50 100}
source scripts/lib/bench-bin.sh
bench_bin
# The generator opens every connection from 127.0.0.1…, and publishes as fast as asked.
printf '[limits]\nmax_connections_per_ip = 0\nmax_publishes_per_second = 0\n' > "$BIN/bench.toml"
export GEN="$BIN/switchboard" SERVER_CPU=0,1 GEN_CPU=0,1
: > "$OUT"
port=${PORT_BASE:-9500}
for round in $(seq 1 "$ROUNDS"); do
  for p in $PROCESSES; do
    for rate in $RATES; do
      PORT_BASE=$port scripts/bench-pair.sh "$OUT" 1 \
        "1 loop|$BIN/switchboard serve --listen {ADDR} --config $BIN/bench.toml --workers 1" \
        "2 loops|$BIN/switchboard serve --listen {ADDR} --config $BIN/bench.toml --workers 2" \
        fanout --subscribers 10000 --rate "$rate" --size 64 --publisher http --sources 4 \
        --duration "$DUR" --drain 10 --processes "$p"
      port=$((port + 2))
    done
  done
done
echo "results in $OUT" >&2
