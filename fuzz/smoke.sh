#!/bin/sh
# A short fuzz run of every target (default 10 s each), for CI: builds the targets, replays
# the committed regression inputs and fuzzes briefly from them (and from fuzz/corpus when a
# seed run made one). Exits non-zero on the first crash. New inputs go to a temporary
# directory, never into the repository.
#   fuzz/smoke.sh [SECONDS]
set -eu
cd "$(dirname "$0")"
secs=${1:-10}
export RUSTC_BOOTSTRAP=1 # cargo-fuzz needs -Z flags; the toolchain is stable
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo fuzz build -a -O
for t in $(cargo fuzz list); do
    mkdir -p "$tmp/$t"
    set -- "$tmp/$t"
    [ -d "regressions/$t" ] && set -- "$@" "regressions/$t"
    [ -d "corpus/$t" ] && set -- "$@" "corpus/$t"
    echo "== $t ($secs s)"
    if ! cargo fuzz run -a -O "$t" "$@" -- -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 >"$tmp/$t.log" 2>&1; then
        tail -n 40 "$tmp/$t.log"
        echo "fuzz/smoke.sh: $t failed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -h 'stat::number_of_executed_units' "$tmp/$t.log"
done
