#!/usr/bin/env bash
# Soak test: the release binary under half of its maximum throughput for a
# long time, watching its own memory two ways — its RSS sampled from /proc by
# this script, and its built-in self-monitoring (`self_monitoring`: leakwatch
# feeds its own RSS as `process.memory.usage`, and with the default `jemalloc`
# feature its allocator's live bytes as `leakwatch.memory.heap.allocated`, of
# `service.name=leakwatch` to its own detector), which must not flag
# leakwatch as leaking.
#
#   bash scripts/soak.sh                 # 30 minutes (the figures in README)
#   bash scripts/soak.sh --minutes 1     # the brief version scripts/test.sh runs
#
# Options: --minutes N | --seconds N (default 30 min); --rate POINTS_PER_SEC
# (skip calibration); --calibrate SECONDS (default 20, 10 for runs under
# 5 min); --rotel (forward to .test-env's rotel collector instead of the
# loadgen's blackhole sink); --binary PATH (skip `cargo build --release`);
# --max-rss-mb N (fail above it); --keep DIR (keep logs and samples in DIR).
#
# Steps: build; calibrate the maximum rate (closed loop, a separate leakwatch
# instance, so the soaked one starts fresh); start leakwatch with detector
# windows scaled to the run (short = a third of it, long = two thirds) so its
# self-assessment can actually reach a verdict within the run; drive
# `leakwatch-loadgen` at half the maximum, with event time advancing at wall
# speed; sample RSS and /api/v1/leaks every few seconds; SIGTERM and check
# the clean exit. Prints RSS min/max/slope and points sent/accepted/forwarded;
# exits non-zero if leakwatch flagged itself, was not watching itself,
# crashed, exited uncleanly, lost requests, or exceeded --max-rss-mb.
# Only loopback addresses are used; every loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
# The whole script is one block, parsed before it runs: editing (or a git
# checkout of) this file during a 30-minute soak cannot derail the run.
{

seconds=1800
rate=""
calibrate=""
downstream_kind=sink
binary=""
max_rss_mb=""
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) seconds=$(($2 * 60)); shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --calibrate) calibrate=$2; shift 2 ;;
    --rotel) downstream_kind=rotel; shift ;;
    --binary) binary=$2; shift 2 ;;
    --max-rss-mb) max_rss_mb=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "soak: unknown option $1" >&2; exit 64 ;;
    esac
done
[ "$seconds" -ge 30 ] || { echo "soak: run at least 30 s" >&2; exit 64; }
[ -n "$calibrate" ] || calibrate=$((seconds < 300 ? 10 : 20))

script=soak
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# ---------------------------------------------------------------- downstream
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port, pid, what
    local deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        kill -0 "$2" 2>/dev/null || return 1
        [ "$SECONDS" -lt "$deadline" ] || fail "$3 not listening within 30 s"
        sleep 0.2
    done
}
# A port picked free can be taken before the downstream binds it: retry.
for attempt in 1 2 3 4 5; do
    p_down=$(free_port)
    case "$downstream_kind" in
    sink)
        "$loadgen" --sink "127.0.0.1:$p_down" --warmup 0s \
            --duration "$((seconds + calibrate + 600))s" >"$work/sink.out" 2>"$work/sink.err" &
        ;;
    rotel)
        rotel="${LEAKWATCH_TEST_ROTEL:-.test-env/bin/rotel-agent}"
        [ -x "$rotel" ] || fail "rotel not found at $rotel (run scripts/setup-test-env.sh)"
        "$rotel" start --otlp-grpc-endpoint "127.0.0.1:$p_down" \
            --otlp-http-endpoint "127.0.0.1:$(free_port)" --exporter blackhole \
            >"$work/rotel.out" 2>&1 &
        ;;
    esac
    down_pid=$!
    if wait_port "$p_down" "$down_pid" "the downstream ($downstream_kind)"; then
        break
    fi
    wait "$down_pid" 2>/dev/null || true
    [ "$attempt" -lt 5 ] || fail "the downstream ($downstream_kind) did not start (see $work)"
done
pids+=("$down_pid")

# leakwatch binds 127.0.0.1:0 and logs the addresses it got (JSON logs).
start_leakwatch() { # config file, log file, what; sets lw_pid, lw_grpc, lw_admin
    "$binary" --config "$1" >"$2" 2>&1 &
    lw_pid=$!
    pids+=("$lw_pid")
    local deadline=$((SECONDS + 60))
    until grep -q '"leakwatch is running."' "$2"; do
        kill -0 "$lw_pid" 2>/dev/null || fail "$3 exited during start-up (log: $2)"
        [ "$SECONDS" -lt "$deadline" ] || fail "$3 not running within 60 s (log: $2)"
        sleep 0.2
    done
    lw_grpc=$(listening "OTLP/gRPC receiver listening." "$2")
    lw_admin=$(listening "Admin listener listening." "$2")
    [ -n "$lw_grpc" ] && [ -n "$lw_admin" ] || fail "$3: bound addresses not found in $2"
    curl -fsS --max-time 5 "http://$lw_admin/readyz" >/dev/null || fail "$3 not ready"
}
listening() { # message, log file
    grep -m1 "\"$1\"" "$2" | grep -o '127\.0\.0\.1:[0-9]*' | head -n 1
}

# Detector windows scaled to the run, and a self-monitoring interval that
# gives a few samples per bucket (long window / 32).
short_s=$((seconds / 3 > 20 ? seconds / 3 : 20))
long_s=$((2 * short_s))
interval_ms=$((long_s * 1000 / 32 / 4))
interval_ms=$((interval_ms < 250 ? 250 : interval_ms > 5000 ? 5000 : interval_ms))
sample_s=$((seconds >= 600 ? 5 : 1))
# The growth worth reporting scales with the windows too. The default
# (256 KiB/h over a 6 h short window) asks for 1.5 MiB of growth across a
# window before it reports; compressing the windows 1080x (a 20 s short
# window) without scaling it would report a 0.3 MiB wobble of leakwatch's
# in-flight buffers as "28 MiB/h". Scaled, the same 1.5 MiB across the short
# window is the bar: 270 MiB/h for the 1-minute soak, 9 MiB/h for 30 minutes.
# loadgen's leaking processes grow 256 KiB per event interval (GiB/h), far
# above either bar, so the detector still has something to find.
min_growth=$((256 * 1024 * 21600 / short_s))
# leakwatch's own warm-up (tables, buffers, allocator arenas filling) is not
# a leak: its self-monitoring starts after a sixth of the run (10 s .. 5 min).
warmup_s=$((seconds / 6 < 10 ? 10 : seconds / 6 > 300 ? 300 : seconds / 6))

config() {
    cat <<EOF
receivers:
  grpc:
    listen: 127.0.0.1:0
  http:
    listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
downstream:
  endpoint: http://127.0.0.1:$p_down
detector:
  short_window: ${short_s}s
  long_window: ${long_s}s
  min_growth_bytes_per_hour: ${min_growth}
self_monitoring:
  enabled: true
  interval: ${interval_ms}ms
  warmup: ${warmup_s}s
log:
  format: json
  level: info
EOF
}

# ---------------------------------------------------------------- calibration
if [ -z "$rate" ]; then
    config >"$work/calibrate.yaml"
    start_leakwatch "$work/calibrate.yaml" "$work/calibrate.log" "leakwatch (calibration)"
    cal_pid=$lw_pid
    say "calibrating: closed loop for ${calibrate}s"
    "$loadgen" --endpoint "http://$lw_grpc" --warmup 2s \
        --duration "${calibrate}s" --json >"$work/calibrate.json" 2>"$work/calibrate.err" || true
    kill -TERM "$cal_pid" 2>/dev/null || true
    wait "$cal_pid" 2>/dev/null || true
    max=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["points_per_sec"]))' \
        "$work/calibrate.json" 2>/dev/null) || fail "calibration produced no report: $(cat "$work/calibrate.err")"
    [ "$max" -gt 0 ] || fail "calibration measured 0 points/s"
    rate=$((max / 2))
    say "maximum ${max} points/s; soaking at half: ${rate} points/s"
else
    max=""
    say "soaking at ${rate} points/s (given)"
fi

# ---------------------------------------------------------------- the soak
config >"$work/soak.yaml"
start_leakwatch "$work/soak.yaml" "$work/leakwatch.log" "leakwatch"
admin="http://$lw_admin"

# Event time advances one loadgen interval per pass over every series: make
# that wall speed (interval = series / rate).
series=4000
interval_us=$((series * 1000000 / rate))
[ "$interval_us" -gt 0 ] || interval_us=1
say "leakwatch pid $lw_pid; ${seconds}s at ${rate} points/s over $series series" \
    "(event interval ${interval_us}us); windows ${short_s}s/${long_s}s" \
    "(growth reported from $((min_growth / 1048576)) MiB/h);" \
    "self-monitoring every ${interval_ms}ms; RSS sampled every ${sample_s}s"
"$loadgen" --endpoint "http://$lw_grpc" --series "$series" --rate "$rate" \
    --warmup 0s --duration "${seconds}s" --interval "${interval_us}us" --json \
    >"$work/loadgen.json" 2>"$work/loadgen.err" &
load_pid=$!
pids+=("$load_pid")

samples="$work/samples.tsv" # seconds, rss kB, self incident state
: >"$samples"
start=$SECONDS
deadline=$((start + seconds + 120))
while kill -0 "$load_pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "loadgen still running ${seconds}s + 120 s after start"
    kill -0 "$lw_pid" 2>/dev/null || fail "leakwatch died during the soak (log: $work/leakwatch.log)"
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$lw_pid/status" 2>/dev/null || echo "")
    self=$(curl -fsS --max-time 5 "$admin/api/v1/leaks" 2>/dev/null | python3 -c '
import json, sys
try:
    items = json.load(sys.stdin)["items"]
except Exception:
    print("unknown"); sys.exit()
print(",".join(i["state"] for i in items if i["resource"]["service_name"] == "leakwatch") or "ok")
' || echo unknown)
    [ -z "$rss" ] || printf '%s\t%s\t%s\n' "$((SECONDS - start))" "$rss" "$self" >>"$samples"
    sleep "$sample_s"
done
wait "$load_pid" && load_rc=0 || load_rc=$?

metrics=$(curl -fsS --max-time 10 "$admin/metrics") || fail "/metrics unreachable after the soak"
leaks=$(curl -fsS --max-time 10 "$admin/api/v1/leaks") || fail "/api/v1/leaks unreachable"
resources=$(curl -fsS --max-time 10 "$admin/api/v1/resources?service.name=leakwatch") || fail "/api/v1/resources unreachable"
# For diagnosis: what leakwatch's detector saw of itself, and its events.
curl -fsS --max-time 10 "$admin/api/v1/series?service.name=leakwatch" >"$work/self-series.json" || true
grep '"service":"leakwatch"' "$work/leakwatch.log" >"$work/self-events.log" || true
printf '%s\n' "$metrics" >"$work/metrics.txt"
printf '%s\n' "$leaks" >"$work/leaks.json"
printf '%s\n' "$resources" >"$work/resources.json"

kill -TERM "$lw_pid"
stop_deadline=$((SECONDS + 60))
while kill -0 "$lw_pid" 2>/dev/null && [ "$SECONDS" -lt "$stop_deadline" ]; do sleep 0.2; done
kill -0 "$lw_pid" 2>/dev/null && fail "leakwatch did not exit within 60 s of SIGTERM"
wait "$lw_pid" && lw_rc=0 || lw_rc=$?
kill -TERM "$down_pid" 2>/dev/null || true
wait "$down_pid" 2>/dev/null || true

# ---------------------------------------------------------------- figures
python3 - "$work" "$seconds" "$rate" "${max:-}" "$load_rc" "$lw_rc" "${max_rss_mb:-}" <<'EOF'
import json, re, sys

work, seconds, rate, max_rate, load_rc, lw_rc, max_rss_mb = sys.argv[1:]
seconds, rate, load_rc, lw_rc = int(seconds), int(rate), int(load_rc), int(lw_rc)
problems = []

rows = [l.split("\t") for l in open(f"{work}/samples.tsv").read().splitlines() if l]
t = [float(r[0]) for r in rows]
rss = [int(r[1]) / 1024 for r in rows]  # MiB
states = [r[2] for r in rows]
if len(rss) < 5:
    problems.append(f"only {len(rss)} RSS samples")

def slope_per_hour(xs, ys):
    n = len(xs)
    if n < 3:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx * 3600 if sxx else 0.0

# Warm-up: the first tenth of the run (at least 10 s) is excluded from the
# steady-state slope.
warm = max(10.0, seconds / 10)
steady = [(x, y) for x, y in zip(t, rss) if x >= warm]
report = json.load(open(f"{work}/loadgen.json"))
metrics = open(f"{work}/metrics.txt").read()
def metric(name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+]+)$", metrics, re.M)
    return int(float(m.group(1))) if m else None

resources = json.load(open(f"{work}/resources.json"))["items"]  # service.name=leakwatch only: the list is paginated
leaks = json.load(open(f"{work}/leaks.json"))["items"]
own = [r for r in resources if r["resource"]["service_name"] == "leakwatch"]
own_leaks = [r for r in leaks if r["resource"]["service_name"] == "leakwatch"]
flagged = sorted({s for s in states if s not in ("ok", "unknown")})
others = [r for r in leaks if r["resource"]["service_name"] != "leakwatch"]

print()
print(f"== soak summary: {seconds} s at {rate} points/s"
      + (f" (half of the measured maximum {int(max_rate)} points/s)" if max_rate else ""))
if rss:
    print(f"RSS: start {rss[0]:.1f} MiB, min {min(rss):.1f} MiB, max {max(rss):.1f} MiB, "
          f"end {rss[-1]:.1f} MiB; slope {slope_per_hour(t, rss):+.1f} MiB/h over the run, "
          f"{slope_per_hour(*zip(*steady)) if len(steady) > 2 else float('nan'):+.1f} MiB/h "
          f"after the first {warm:.0f} s ({len(rss)} samples)")
sent = report["points"] + report["rejected_points"]
errors = sum(report["errors"].values())
print(f"loadgen: {report['requests']} requests OK, {errors} failed{' ' + str(report['errors']) if errors else ''}; "
      f"{report['points']} points accepted, {report['rejected_points']} refused; "
      f"{report['points_per_sec']:.0f} points/s achieved; latency p50 "
      f"{report['latency_ms'].get('p50', '?')} ms, p99 {report['latency_ms'].get('p99', '?')} ms")
received = metric('leakwatch_receiver_items_total{signal="metrics",protocol="grpc"}')
delivered = metric('leakwatch_exporter_requests_total{signal="metrics",outcome="delivered"}')
dropped = metric('leakwatch_exporter_requests_total{signal="metrics",outcome="dropped"}')
print(f"leakwatch: {received} points received, {delivered} metrics requests forwarded, "
      f"{dropped} dropped; {metric('leakwatch_series')} series, "
      f"{metric('leakwatch_resources')} resources; {len(others)} open incidents of "
      f"loadgen's leaking processes")
if own:
    s = own[0]["summary"]
    print(f"self-monitoring: state {own[0]['state']}, growth {s['growth_bytes_per_hour'] / 2**20:+.2f} MiB/h, "
          f"R² {s['r_squared']:.2f} over {s['window_seconds']:.0f} s; states seen: "
          f"{', '.join(sorted(set(states))) or 'none'}")
    first = next((x for x, st in zip(t, states) if st not in ("ok", "unknown")), None)
    if first is not None:
        print(f"self-monitoring: first flagged at {first:.0f} s; RSS samples in {work}/samples.tsv, "
              f"the detector's view in {work}/self-series.json, events in {work}/self-events.log")

if load_rc != 0 and errors == 0:
    problems.append(f"loadgen exited {load_rc}")
if report["requests"] and errors > 0.001 * (report["requests"] + errors):
    problems.append(f"{errors} failed requests")
if lw_rc != 0:
    problems.append(f"leakwatch exited {lw_rc} on SIGTERM")
if not own:
    problems.append("leakwatch's own resource is not tracked: self-monitoring did not run")
if own_leaks or flagged:
    problems.append(f"leakwatch flagged itself: {flagged or [r['state'] for r in own_leaks]}")
if not others:
    problems.append("no open incident for loadgen's leaking processes either: the detector was not "
                    "live, so 'leakwatch did not flag itself' would mean nothing")
if dropped:
    problems.append(f"{dropped} metrics requests dropped")
if max_rss_mb and rss and max(rss) > float(max_rss_mb):
    problems.append(f"RSS {max(rss):.0f} MiB above --max-rss-mb {max_rss_mb}")
if report["points_per_sec"] < 0.8 * rate:
    print(f"note: achieved {report['points_per_sec']:.0f} points/s, below 80% of the target")
if problems:
    print("soak: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("soak: passed: leakwatch did not flag itself")
EOF
exit
}
