#!/usr/bin/env bash
# `leakwatch analyze` over a fleet: backfills 48 h of N processes (default 100) at 15 s into a
# real Prometheus (Debian's promtool + prometheus, on a free loopback port), half of them leaking,
# half a healthy GC sawtooth, under the guide's metric names (4 series a process), then times
# `leakwatch analyze --prometheus … --since 48h` (default step 15 s: two query_range chunks per
# process) on a release build and checks every verdict. Prints the figure (the line "BENCH …").
#
#   bash scripts/bench-analyze.sh                 # 100 processes (the figure in README)
#   bash scripts/bench-analyze.sh --processes 10
#
# On demand only (not in CI): the test suite runs the same code with 2 processes
# (tests/analyze.rs, a_48h_fleet_is_analysed_in_seconds). Needs prometheus and promtool
# (scripts/setup-test-env.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
processes=100
while [ $# -gt 0 ]; do
    case "$1" in
        --processes) processes="$2"; shift 2 ;;
        *) echo "bench-analyze: unknown option $1" >&2; exit 64 ;;
    esac
done
command -v prometheus >/dev/null || [ -n "${LEAKWATCH_TEST_PROMETHEUS:-}" ] \
    || { echo "bench-analyze: prometheus not found (bash scripts/setup-test-env.sh)" >&2; exit 1; }
command -v promtool >/dev/null || [ -n "${LEAKWATCH_TEST_PROMTOOL:-}" ] \
    || { echo "bench-analyze: promtool not found (bash scripts/setup-test-env.sh)" >&2; exit 1; }
echo "bench-analyze: $processes processes x 48 h at 15 s, release build ($(nproc) cores)"
# CI=true: a missing tool fails instead of skipping.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
LEAKWATCH_BENCH_PROCESSES="$processes" CI=true \
    cargo test --release --locked -p leakwatch --test analyze a_48h_fleet_is_analysed_in_seconds \
    -- --nocapture >"$log" 2>&1 || status=$?
grep -E '^(BENCH|fleet:|test result)' "$log" || true
if [ "$status" != 0 ]; then
    tail -n 40 "$log" >&2
    echo "bench-analyze: FAILED (exit $status)" >&2
fi
exit "$status"
