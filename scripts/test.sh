#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need
# (Python venv with the OpenTelemetry SDK and rotel, the Node example's
# packages), then runs every test — unit, integration, scenario suite and the
# end-to-end tests with real SDKs and a real collector — plus the short
# versions of the long runs (fuzz-corpus replay, a brief soak, a 1 M-series
# memory-limiter flood).
#
# Under CI=true a missing tool fails the run; nothing is skipped silently.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setting up the test environment"
bash scripts/setup-test-env.sh

echo "== cargo test"
cargo test --locked --workspace --all-targets

echo "== brief soak (the 30-minute run: bash scripts/soak.sh)"
bash scripts/soak.sh --minutes 1 --binary target/debug/leakwatch

echo "== memory-limiter flood, 1 M distinct series on the debug build (the 10 M run: bash scripts/flood.sh)"
bash scripts/flood.sh --series 1000000 --binary target/debug/leakwatch
