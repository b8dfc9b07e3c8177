# Sourced by the bench scripts: the Switchboard build to measure, out of target/'s reach.
#
#   source scripts/lib/bench-bin.sh; bench_bin
#
# Builds this tree's release binary unless SB_BIN names one, and copies it to
# "$BIN/switchboard" in a fresh temporary directory BIN (removed on exit), so that a
# concurrent rebuild of target/ cannot swap the binary mid-run. Other binaries a script
# needs go into BIN beside it.
bench_bin() {
  if [[ -z "${SB_BIN:-}" ]]; then
    cargo build --release --locked -p switchboard-server >&2
    SB_BIN=target/release/switchboard
  fi
  BIN=$(mktemp -d)
  trap 'rm -rf "$BIN"' EXIT
  cp "$SB_BIN" "$BIN/switchboard"
}
