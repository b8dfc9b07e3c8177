#!/usr/bin/env bash
# scripts/build-uws.sh — builds the uWebSockets peer (crates/bench/peers/uws-peer.cpp) that
# `switchboard bench` and scripts/bench.sh compare against, with -O3, into target/uws/uws-peer.
# On demand only: cargo, CI and the tests never need it, and no uWebSockets source is kept in
# this repository.
#
#   UWS_SRC=DIR scripts/build-uws.sh
#       DIR holds checkouts of uNetworking/uWebSockets and uNetworking/uSockets as
#       DIR/uWebSockets and DIR/uSockets;
#   UWS_GIT=GITDIR USOCKETS_GIT=GITDIR scripts/build-uws.sh
#       the two repositories' git dirs (bare or not): their HEADs are exported into
#       target/uws/src first.
#
# Run it as `target/uws/uws-peer [127.0.0.1:]PORT` (it listens on 127.0.0.1:PORT); the bench
# passes it as --server-cmd 'target/uws/uws-peer {ADDR}'. scripts/bench.sh and
# scripts/bench-uws.sh add it to their runs when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${UWS_OUT:-$root/target/uws}
mkdir -p "$out"
if [[ -n "${UWS_SRC:-}" ]]; then
  src=$(cd "$UWS_SRC" && pwd)
elif [[ -n "${UWS_GIT:-}" && -n "${USOCKETS_GIT:-}" ]]; then
  src=$out/src
  rm -rf "$src"
  mkdir -p "$src/uWebSockets" "$src/uSockets"
  git --git-dir="$UWS_GIT" archive HEAD | tar -x -C "$src/uWebSockets"
  git --git-dir="$USOCKETS_GIT" archive HEAD | tar -x -C "$src/uSockets"
  {
    echo "uWebSockets $(git --git-dir="$UWS_GIT" rev-parse HEAD)"
    echo "uSockets $(git --git-dir="$USOCKETS_GIT" rev-parse HEAD)"
  } > "$out/VERSION"
else
  echo "usage: UWS_SRC=DIR $0  or  UWS_GIT=GITDIR USOCKETS_GIT=GITDIR $0" >&2
  exit 2
fi
[[ -f "$src/uWebSockets/src/App.h" && -d "$src/uSockets/src" ]] \
  || { echo "no uWebSockets/src/App.h or uSockets/src under $src" >&2; exit 2; }
# uSockets without TLS (plain C, epoll), then the peer against its objects: the flags of
# uWebSockets' own examples, -O3, no zlib (the peer never compresses).
obj=$out/obj
rm -rf "$obj"
mkdir -p "$obj"
(cd "$obj" && ${CC:-cc} -O3 -DLIBUS_NO_SSL -flto=auto -I"$src/uSockets/src" -c \
  "$src"/uSockets/src/*.c "$src"/uSockets/src/eventing/*.c "$src"/uSockets/src/crypto/*.c)
${CXX:-c++} -O3 -std=c++20 -flto=auto -DLIBUS_NO_SSL -DUWS_NO_ZLIB \
  -I"$src/uWebSockets/src" -I"$src/uSockets/src" \
  crates/bench/peers/uws-peer.cpp "$obj"/*.o -o "$out/uws-peer"
echo "$out/uws-peer"
