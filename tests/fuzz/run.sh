#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each one for a while.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 20).  TARGET: one with a seed corpus in
# tests/fuzz/corpus/ (default: all of them, one after another).  BUILD_DIR
# overrides build-fuzz.
#
# Each target runs on a copy of its seed corpus in BUILD_DIR/fuzz-work/TARGET,
# so tests/fuzz/corpus stays as it is.  A crash fails the run; its input is
# left in BUILD_DIR/fuzz-work/TARGET/crashes/; once fixed, keep it in the
# target's corpus as a regression seed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
seconds=${1:-20}
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
        for d in "$here"/corpus/*/; do
                targets+=("$(basename "$d")")
        done
fi

case "$seconds" in
'' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number" >&2; exit 2 ;;
esac
for t in "${targets[@]}"; do
        [ -d "$here/corpus/$t" ] || { echo "run.sh: unknown target $t" >&2; exit 2; }
done

if [ ! -d "$build" ]; then
        CC=clang meson setup "$build" "$root" -Dfuzz=true
elif ! meson configure "$build" | grep -Eq '^ *fuzz +true '; then
        meson configure "$build" -Dfuzz=true
fi
ninja -C "$build" "${targets[@]/#/tests/fuzz/}"

failed=()
for t in "${targets[@]}"; do
        work=$build/fuzz-work/$t
        rm -rf "$work"
        mkdir -p "$work/corpus" "$work/crashes"
        cp "$here/corpus/$t/"* "$work/corpus/"
        dict=()
        [ -f "$here/$t.dict" ] && dict=("-dict=$here/$t.dict")
        echo "== $t: ${seconds}s"
        if "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$work/crashes/" "${dict[@]}" \
                "$work/corpus" >"$work/log" 2>&1; then
                grep -E '^stat::number_of_executed_units|^Done' "$work/log" || true
        else
                echo "-- $t failed (full log: $work/log):"
                grep -m1 -B4 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error' \
                        "$work/log" || tail -n 30 "$work/log"
                grep -E '^SUMMARY|Test unit written' "$work/log" || true
                failed+=("$t")
        fi
done

if [ ${#failed[@]} -gt 0 ]; then
        echo "FAILED: ${failed[*]}"
        exit 1
fi
echo "all targets ran clean for ${seconds}s each"
