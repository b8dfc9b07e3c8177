#!/usr/bin/env bash
# scripts/bench-tls-idle.sh — idle connections over plain TCP and over TLS in one sitting:
# for each round and each kind (WebSocket, SSE), a fresh plain server then a fresh TLS
# server (the same release binary, built with `--features tls`), each pinned to CPU
# $SERVER_CPU with the generator on CPU $GEN_CPU. JSON lines, labelled `plain` / `tls`,
# are appended to OUT; `cat /proc/loadavg` before each run goes to stderr. The
# certificate (ECDSA P-256, from a throwaway CA, for 127.0.0.1) is made in a temporary
# directory and removed afterwards.
#
#   scripts/bench-tls-idle.sh OUT ROUNDS [idle ARGS...]   e.g. ... 2 --connections 5000 --hold 40
set -euo pipefail
OUT=$1 ROUNDS=$2
shift 2
SERVER_CPU=${SERVER_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
BIN=${BIN:-target/release/switchboard}
port=${PORT_BASE:-9500}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=bench-ca -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
  -keyout "$dir/key.pem" -out "$dir/leaf.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > "$dir/ext"
openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
  -CAcreateserial -days 1 -extfile "$dir/ext" -out "$dir/cert.pem" 2>/dev/null
# Every connection comes from 127.0.0.x: no per-address limit.
printf '[limits]\nmax_connections_per_ip = 0\n' > "$dir/bench.toml"
serve="$BIN serve --config $dir/bench.toml --listen {ADDR}"
for round in $(seq 1 "$ROUNDS"); do
  for kind in ws sse; do
    for side in plain tls; do
      port=$((port + 1))
      addr=127.0.0.1:$port
      cmd=${serve//\{ADDR\}/$addr} tls=()
      if [ "$side" = tls ]; then
        cmd="$cmd --tls-cert $dir/cert.pem --tls-key $dir/key.pem"
        tls=(--tls-ca "$dir/ca.pem")
      fi
      echo "== round $round $side $kind (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      timeout 600 taskset -c "$GEN_CPU" "$BIN" bench idle --addr "$addr" --kind "$kind" \
        --server-cmd "$cmd" --server-cpu "$SERVER_CPU" --label "$side" "${tls[@]}" "$@" \
        | tee -a "$OUT"
    done
  done
done
