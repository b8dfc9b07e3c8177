# Sourced by test scripts: start a real `switchboard serve` on a free loopback port.
#
#   source scripts/lib/serve.sh; start_switchboard "$ROOT"
#
# Builds the binary unless SWITCHBOARD_BIN names one, starts it with --listen 127.0.0.1:0,
# waits (bounded, 10 s) for its "listening on" line, and sets ADDR (host:port) and SRV (its
# PID). An EXIT trap stops that PID and removes the log; nothing else is touched.
start_switchboard() {
  local root=$1 bin=${SWITCHBOARD_BIN:-}
  if [ -z "$bin" ]; then
    (cd "$root" && cargo build -q -p switchboard-server --bin switchboard)
    bin="$root/target/debug/switchboard"
  fi
  SERVE_LOG="$(mktemp)"
  "$bin" serve --listen 127.0.0.1:0 >"$SERVE_LOG" 2>&1 &
  SRV=$!
  trap 'kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; rm -f "$SERVE_LOG"' EXIT
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\).*/\1/p' "$SERVE_LOG" | head -1)"
    [ -n "$ADDR" ] && return 0
    kill -0 "$SRV" 2>/dev/null || { cat "$SERVE_LOG"; return 1; }
    sleep 0.1
  done
  echo "server did not start"
  cat "$SERVE_LOG"
  return 1
}
