#!/usr/bin/env bash
# Profiles `switchboard serve` under a fan-out load with perf (cpu-clock sampling with
# call graphs; hardware counters are not available on this machine kind).
#
#   scripts/bench-profile.sh OUTDIR [fanout args…]   e.g. --subscribers 10000 --rate 10
# Writes OUTDIR/perf.data, OUTDIR/report.txt (flat, by symbol), OUTDIR/result.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench-profile.sh OUTDIR [fanout args]}; shift
mkdir -p "$OUT"
cargo build --release -p switchboard-server >&2
BIN=$(mktemp -d)
cp target/release/switchboard "$BIN/"
# The load generator opens every connection from 127.0.0.1: lift the per-address limit.
printf '[limits]\nmax_connections_per_ip = 0\n' > "$BIN/bench.toml"
PORT=${PORT:-9400}
taskset -c "${SERVER_CPU:-0}" "$BIN/switchboard" serve --listen 127.0.0.1:$PORT --config "$BIN/bench.toml" >/dev/null 2>&1 &
SP=$!
trap 'kill $SP 2>/dev/null; rm -rf "$BIN"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
taskset -c "${GEN_CPU:-1}" "$BIN/switchboard" bench fanout --addr 127.0.0.1:$PORT --server-pid $SP \
  --label switchboard "$@" > "$OUT/result.json" 2> "$OUT/generator.log" &
GP=$!
for _ in $(seq 600); do grep -q "ready" "$OUT/generator.log" 2>/dev/null && break; sleep 0.2; done
sleep 1
perf record -e cpu-clock -F 1999 -g -p $SP -o "$OUT/perf.data" -- sleep "${PROFILE_SECONDS:-6}" 2>/dev/null
wait $GP
perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol --percent-limit 0.7 2>/dev/null \
  | grep -v '^$' | grep -E '^ +[0-9]' > "$OUT/report.txt" || true
cat "$OUT/result.json"
