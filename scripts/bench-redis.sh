#!/usr/bin/env bash
# scripts/bench-redis.sh — cross-node fan-out through Redis (issue 16): two `switchboard
# serve` nodes on one Redis, then on a Redis Cluster of three primaries. The generator's
# subscribers (WebSocket) are on node B, which is measured and pinned to CPU $SERVER_CPU;
# its publisher sends `POST /ch/NAME` to node A, so every message crosses A → Redis → B.
# Node A, the Redis processes and the generator share CPU $GEN_CPU. Each run is one JSON
# line: `switchboard bench fanout`'s (deliveries per node-B CPU-second, missing, latency)
# plus `broker`, `redis_cpu_s` (every redis-server of the run, from /proc, over the whole
# run: connects, subscribes and publishes), `redis_cpu_us_per_message`, `node_a_cpu_s`
# and `published_per_s`. A run the generator fails (say, deliveries missing) keeps its
# line. Every process started here is stopped by its PID.
#
# BROKERS=memory adds the reference: one node on the in-memory broker, publisher and
# subscribers on it (no Redis, nothing crosses).
#
#   scripts/bench-redis.sh [OUT.jsonl]      (default docs/perf/results-10-redis.jsonl)
#   ROUNDS=2 SUBSCRIBERS=2000 RATE=100 DURATION=10 BROKERS="memory single cluster" ...
#                                           (the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/perf/results-10-redis.jsonl}
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
ROUNDS=${ROUNDS:-2}
SUBSCRIBERS=${SUBSCRIBERS:-2000}
RATE=${RATE:-100}
DURATION=${DURATION:-10}
BROKERS=${BROKERS:-memory single cluster}
BASE=${BASE_PORT:-17300}

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
  echo "needs redis-server and redis-cli (Debian: apt-get install redis-server)" >&2
  exit 1
}
command -v jq >/dev/null || { echo "needs jq (Debian: apt-get install jq)" >&2; exit 1; }
cargo build --release --locked -p switchboard-server --features redis >&2
# A copy, so that a concurrent rebuild of target/ cannot swap the binary mid-run.
BIN=$(mktemp -d)
PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$BIN"' EXIT
cp target/release/switchboard "$BIN/"
printf 'demo = false\n[limits]\nmax_connections_per_ip = 0\nmax_publishes_per_second = 0\n' > "$BIN/bench.toml"

cpu_ticks() { # utime + stime of a PID, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

redis_at() { # PORT [extra args…]: a redis-server on GEN_CPU, in its own directory
  local port=$1; shift
  rm -rf "$BIN/r$port"   # a cluster node remembers its cluster in nodes.conf
  mkdir -p "$BIN/r$port"
  taskset -c "$GEN_CPU" redis-server --bind 127.0.0.1 --port "$port" --save '' \
    --appendonly no --dir "$BIN/r$port" "$@" >"$BIN/r$port/log" 2>&1 &
  PIDS+=($!)
  REDIS_PIDS+=($!)
  wait_port "$port"
}

run() { # BROKER: one run on a fresh Redis (or cluster) and fresh nodes
  local broker=$1 url
  REDIS_PIDS=()
  if [[ $broker == memory ]]; then
    local line
    line=$(taskset -c "$GEN_CPU" "$BIN/switchboard" bench fanout --addr "127.0.0.1:$((BASE + 11))" \
      --server-cmd "$BIN/switchboard serve --listen {ADDR} --config $BIN/bench.toml" \
      --server-cpu "$SERVER_CPU" --label "switchboard-memory" --publisher http --transport ws \
      --subscribers "$SUBSCRIBERS" --rate "$RATE" --duration "$DURATION" | tail -n 1) || true
    echo "$line" | jq -c --argjson d "$DURATION" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
      '. + {broker: "memory", published_per_s: (.published / $d), loadavg: $load}' | tee -a "$OUT"
    return
  elif [[ $broker == single ]]; then
    redis_at $((BASE))
    url="redis://127.0.0.1:$BASE/"
  else
    local seeds=()
    for i in 0 1 2; do
      redis_at $((BASE + i)) --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout 5000
      seeds+=("127.0.0.1:$((BASE + i))")
    done
    redis-cli --cluster create "${seeds[@]}" --cluster-yes >/dev/null
    for _ in $(seq 100); do
      redis-cli -p "$BASE" cluster info | grep -q 'cluster_state:ok' && break
      sleep 0.2
    done
    url="redis+cluster://$(IFS=,; echo "${seeds[*]}")/"
  fi
  local a=$((BASE + 10)) b=$((BASE + 11))
  taskset -c "$GEN_CPU" "$BIN/switchboard" serve --listen "127.0.0.1:$a" \
    --config "$BIN/bench.toml" --redis "$url" >"$BIN/a.log" 2>&1 &
  local a_pid=$!
  PIDS+=("$a_pid")
  wait_port "$a"
  local r0=0 a0
  for p in "${REDIS_PIDS[@]}"; do r0=$((r0 + $(cpu_ticks "$p"))); done
  a0=$(cpu_ticks "$a_pid")
  local line
  line=$(taskset -c "$GEN_CPU" "$BIN/switchboard" bench fanout --addr "127.0.0.1:$b" \
    --server-cmd "$BIN/switchboard serve --listen {ADDR} --config $BIN/bench.toml --redis $url" \
    --server-cpu "$SERVER_CPU" --label "switchboard-redis-$broker" \
    --publish-addr "127.0.0.1:$a" --publisher http --transport ws \
    --subscribers "$SUBSCRIBERS" --rate "$RATE" --duration "$DURATION" | tail -n 1) || true
  local r1=0 a1 hz
  for p in "${REDIS_PIDS[@]}"; do r1=$((r1 + $(cpu_ticks "$p"))); done
  a1=$(cpu_ticks "$a_pid")
  hz=$(getconf CLK_TCK)
  stop_all
  echo "$line" | jq -c --arg broker "$broker" --argjson r "$(( r1 - r0 ))" \
    --argjson a "$(( a1 - a0 ))" --argjson hz "$hz" --argjson d "$DURATION" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '. + {broker: $broker, redis_cpu_s: ($r / $hz), node_a_cpu_s: ($a / $hz),
          published_per_s: (.published / $d),
          redis_cpu_us_per_message: (if .published > 0 then ($r / $hz) * 1e6 / .published else null end),
          loadavg: $load}' | tee -a "$OUT"
}

for _ in $(seq "$ROUNDS"); do
  for b in $BROKERS; do run "$b"; done
done
