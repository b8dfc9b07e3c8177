#!/usr/bin/env bash
# install.sh — make Autobahn|Testsuite's `wstest` available for the conformance runs.
#
# wstest (PyPI autobahntestsuite 25.10.1) runs only on Python 2.7 (Twisted 19.10,
# autobahn 0.10.9), so it gets its own Python 2.7 virtualenv under $AUTOBAHN_HOME
# (default ~/.cache/switchboard/autobahn):
#   $AUTOBAHN_HOME/bootstrap  Python 3 venv with virtualenv 20.21.1, the last release that
#                             can still create Python 2.7 environments
#   $AUTOBAHN_HOME/venv       the Python 2.7 virtualenv holding wstest, every dependency pinned
# Needs a CPython 2.7 ($PYTHON27, python2.7 on PATH, or pyenv's versions/2.7.*), python3,
# gcc (wsaccel and ujson compile) and PyPI. Idempotent: when the pinned wstest answers,
# it returns at once; FORCE=1 rebuilds. Prints the path of wstest as its last line.
set -euo pipefail

HOME_DIR=${AUTOBAHN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/autobahn}
VERSION=25.10.1
WSTEST=$HOME_DIR/venv/bin/wstest
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

have_wstest() {
  [ -x "$WSTEST" ] && (cd / && "$WSTEST" --autobahnversion 2>/dev/null) | grep -qx "AutobahnTestSuite $VERSION"
}

if [ "${FORCE:-0}" != 1 ] && have_wstest; then
  echo "$WSTEST"
  exit 0
fi

is_py27() {
  [ -n "$1" ] && [ -x "$1" ] &&
    "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null
}

find_py27() {
  local p root
  if is_py27 "${PYTHON27:-}"; then echo "$PYTHON27"; return 0; fi
  for p in "$(command -v python2.7 || true)" "$(command -v python2 || true)"; do
    if is_py27 "$p"; then echo "$p"; return 0; fi
  done
  root=${PYENV_ROOT:-$HOME/.pyenv}
  for p in "$root"/versions/2.7*/bin/python2.7; do
    if is_py27 "$p"; then echo "$p"; return 0; fi
  done
  return 1
}

if ! PY27=$(find_py27); then
  echo "install.sh: no CPython 2.7 found; set PYTHON27=/path/to/python2.7" >&2
  exit 1
fi
echo "building wstest $VERSION in $HOME_DIR with $PY27" >&2

if ! command -v gcc >/dev/null 2>&1; then
  echo "gcc is missing: installing it with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >&2
fi

mkdir -p "$HOME_DIR"
if [ ! -x "$HOME_DIR/bootstrap/bin/virtualenv" ]; then
  rm -rf "$HOME_DIR/bootstrap"
  python3 -m venv "$HOME_DIR/bootstrap"
  "$HOME_DIR/bootstrap/bin/pip" install -q --disable-pip-version-check 'virtualenv==20.21.1' >&2
fi

rm -rf "$HOME_DIR/venv"
"$HOME_DIR/bootstrap/bin/virtualenv" -q -p "$PY27" "$HOME_DIR/venv" >&2
"$HOME_DIR/venv/bin/pip" install -q --disable-pip-version-check --no-python-version-warning \
  -c "$HERE/constraints.txt" "autobahntestsuite==$VERSION" >&2

have_wstest || { echo "install.sh: wstest does not answer after installing" >&2; exit 1; }
echo "$WSTEST"
