# Shared by scripts/soak.sh and scripts/flood.sh, sourced after their options are parsed.
# Reads: $script (the prefix of messages), $binary (empty: build and use the release binary),
# $keep (empty: the work directory is removed on exit). Sets: say, fail, $binary, $loadgen (the
# load generator beside the binary), $work, $pids (processes to stop on exit; append to it) and
# the EXIT trap that stops them.

say() { printf '%s: %s\n' "$script" "$*"; }
fail() { printf '%s: FAILED: %s\n' "$script" "$*" >&2; exit 1; }
for tool in curl python3; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done

if [ -z "$binary" ]; then
    say "building the release binaries (leakwatch, leakwatch-loadgen)"
    cargo build --release --locked -p leakwatch -p leakwatch-tools --bin leakwatch --bin leakwatch-loadgen 2>&1 | tail -n 2
    binary="${CARGO_TARGET_DIR:-target}/release/leakwatch"
fi
[ -x "$binary" ] || fail "no leakwatch binary at $binary"
loadgen="$(dirname "$binary")/leakwatch-loadgen"
[ -x "$loadgen" ] || fail "no leakwatch-loadgen beside $binary (cargo build --bin leakwatch-loadgen)"

work=${keep:-$(mktemp -d)}
mkdir -p "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
