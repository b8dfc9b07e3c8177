#!/usr/bin/env bash
# Fuzz smoke test for the WebSocket codec, the application protocol and the client-token
# checks: every cargo-fuzz target in fuzz/ runs for a short time on a temporary copy of its
# committed seed corpus (the committed corpus never grows).
#
#   FUZZ_SECONDS   seconds per target (default 20)
#   FUZZ_TARGETS   space-separated targets (default: all of them)
#   FUZZ_STABLE=1  use stable with RUSTC_BOOTSTRAP=1 even if a nightly is installed
#
# Prints one line per target, then `fuzz: N passed, M failed`, and exits non-zero if any target crashed or failed to run;
# crash inputs are kept in fuzz/artifacts/<target>/ (reproduce with
# `cargo +nightly fuzz run <target> <file>`).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
targets="${FUZZ_TARGETS:-frame_header handshake_request client_response server_connection proto hixie76 request_head token}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo-fuzz needs nightly-only rustc flags (sanitizers); use a nightly toolchain when one
# is installed, else let stable accept them.
if [ "${FUZZ_STABLE:-0}" != 1 ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

"${fuzz[@]}" build >/dev/null 2>&1 || "${fuzz[@]}" build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
passed=0
failed=0
for t in $targets; do
    corpus="$work/$t"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$t" ]; then
        cp fuzz/corpus/"$t"/* "$corpus"/
    fi
    log="$work/$t.log"
    if "${fuzz[@]}" run "$t" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
        cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)"
        echo "fuzz $t: ok, ${execs:-?} execs in ${seconds}s, cov ${cov:-?}, corpus $(ls "$corpus" | wc -l)"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAILED (see the log below; inputs in fuzz/artifacts/$t/)"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 || tail -40 "$log"
        status=1
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
exit "$status"
