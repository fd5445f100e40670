#!/usr/bin/env bash
# The fuzzing campaign, run on demand (CI only replays the committed corpus:
# tests/fuzz_corpus.rs). Runs each cargo-fuzz target (fuzz/fuzz_targets/) one
# after another for N minutes with libFuzzer, then prints per target: wall
# time, executions, executions per second, corpus size, coverage, peak RSS and
# crashes.
#
#   bash scripts/fuzz.sh                      # every target, 10 minutes each
#   bash scripts/fuzz.sh --minutes 1 detector # one target, 1 minute
#   bash scripts/fuzz.sh --minimize           # …then merge what the run found
#                                             # into the committed corpus
#   bash scripts/fuzz.sh --merge-only         # only that merge, no fuzzing
#
# Options: --minutes N (default 10), --seconds N (overrides --minutes),
# --minimize, --merge-only, --asan (AddressSanitizer; off by default:
# leakwatch has no unsafe code and ASan halves the speed), TARGET...
# (default: all). The merge keeps, per target, a set of inputs of at most
# 1 KiB that covers the edges the whole corpus covers (libFuzzer's set-cover
# merge), plus the hand-made seeds (seed-*, from tests/fuzz_corpus.rs).
#
# Needs cargo-fuzz (installed from crates.io if missing) and a C++ compiler
# (libfuzzer-sys builds libFuzzer). cargo-fuzz passes nightly-only `-Z`
# flags; on the stable toolchain RUSTC_BOOTSTRAP=1 lets rustc accept them.
#
# The working corpus is fuzz/target/corpus/<target> (not committed), seeded
# from fuzz/corpus/<target>; crashes land in fuzz/artifacts/<target>/. Exits
# non-zero if any target crashed, timed out or ran out of memory.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
minimize=0
fuzzing=1
sanitizer=none
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --minimize) minimize=1; shift ;;
    --merge-only) minimize=1; fuzzing=0; shift ;;
    --asan) sanitizer=address; shift ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 64 ;;
    *) targets+=("$1"); shift ;;
    esac
done
all=(metrics_export traces_logs_export http_json decompress detector)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz)
opts=(-O --sanitizer "$sanitizer")

echo "== building fuzz targets (sanitizer: $sanitizer)"
"${fuzz[@]}" build "${opts[@]}"

stat() { grep -m1 "^stat::$1:" "$2" | awk '{print $2}'; }

fuzz_target() { # target: runs it for $seconds, appends a line to $report
    local t=$1 work=fuzz/target/corpus/$1 artifacts=fuzz/artifacts/$1 log=fuzz/target/fuzz-$1.log
    local before start rc elapsed last crashes
    mkdir -p "$work" "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    echo "== $t for ${seconds}s (log: $log)"
    start=$(date +%s)
    set +e
    "${fuzz[@]}" run "${opts[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        echo "!! $t: exit $rc, $crashes new artifact(s) in $artifacts:"
        ls -t "$artifacts" | head -n "$((crashes > 0 ? crashes : 1))" | sed "s|^|   $artifacts/|"
        grep -m3 -E "panicked|ERROR: libFuzzer|SUMMARY" "$log" || true
    fi
    report+=("$(printf '%-20s %6ss %12s %9s/s %6s %10s  cov %5s  ft %6s  rss %4s MB  crashes %s' \
        "$t" "$elapsed" "$(stat number_of_executed_units "$log")" \
        "$(stat average_exec_per_sec "$log")" \
        "$(find "$work" "fuzz/corpus/$t" -type f | wc -l)" \
        "$(find "$work" "fuzz/corpus/$t" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')" \
        "$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")" \
        "$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")" \
        "$(stat peak_rss_mb "$log")" "$crashes")")
}

merge_target() { # target: replaces the committed corpus by a minimal cover
    local t=$1 merged h s
    merged=$(mktemp -d)
    # The seeds go in first, so only what they do not cover is added.
    cp fuzz/corpus/"$t"/seed-* "$merged"/ 2>/dev/null || true
    mkdir -p "fuzz/target/corpus/$t"
    "${fuzz[@]}" run "${opts[@]}" "$t" "$merged" "fuzz/corpus/$t" "fuzz/target/corpus/$t" -- \
        -set_cover_merge=1 -use_counters=0 -max_len=1024 -timeout=10 >"fuzz/target/merge-$t.log" 2>&1 ||
        { tail -n 5 "fuzz/target/merge-$t.log"; exit 1; }
    find "fuzz/corpus/$t" -type f ! -name 'seed-*' -delete
    for s in "$merged"/*; do
        [ -e "$s" ] || continue
        h=$(basename "$s")
        [ -e "fuzz/corpus/$t/$h" ] || cp "$s" "fuzz/corpus/$t/$h"
    done
    rm -rf "$merged"
    echo "   $t: committed corpus now $(find "fuzz/corpus/$t" -type f | wc -l) inputs," \
        "$(du -sb "fuzz/corpus/$t" | cut -f1) bytes"
}

report=()
failed=0
for t in "${targets[@]}"; do
    [ "$fuzzing" -eq 0 ] || fuzz_target "$t"
    [ "$minimize" -eq 0 ] || merge_target "$t"
done

echo
echo "== fuzzing summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, sanitizer: $sanitizer)"
printf '%-20s %7s %12s %11s %6s %10s\n' target time execs rate inputs bytes
for line in "${report[@]}"; do echo "$line"; done
if [ "$failed" -ne 0 ]; then
    echo "FAILED: crashes, timeouts or OOMs above; reproduce with" \
        "RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s none <target> <artifact>" >&2
    exit 1
fi
