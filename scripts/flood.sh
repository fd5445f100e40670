#!/usr/bin/env bash
# Cardinality flood against the memory limiter: leakwatch with a memory
# ceiling (receivers.memory_limiter) and a series limit far above what fits in
# it, so memory, not the count, is the bound. `leakwatch-loadgen --distinct`
# sends points that each open a new series (collector-sized requests of 5,000
# points over 100 new processes) as fast as leakwatch answers, while a small
# fleet of existing processes — one leaking, three healthy (`leakwatch-loadgen`
# resources 0-3; resource 3 leaks) — keeps reporting at wall speed.
#
#   bash scripts/flood.sh                          # 10 M distinct series (the figures in README)
#   bash scripts/flood.sh --series 1000000 --binary target/debug/leakwatch
#                                                  # the CI version scripts/test.sh runs
#
# Options: --series N (distinct series to send, a multiple of 50,000; default
# 10,000,000); --limit-mb N (memory ceiling, default 256; soft limit at 80 %);
# --check-interval D (limiter sampling, default the configured default 500ms);
# --binary PATH (skip `cargo build --release`); --keep DIR (keep logs, samples).
#
# Prints points sent / accepted / refused (partial_success.rejected_data_points
# and whole requests refused with UNAVAILABLE), series tracked, the maximum
# VmRSS sampled (every 100 ms) against the ceiling, and the fleet's verdicts
# from /api/v1/leaks. Exits non-zero if RSS reached the ceiling, the limiter
# never refused anything, the leaking process was not detected (suspected or
# confirmed), a healthy one was flagged, leakwatch died or exited uncleanly.
# Only loopback addresses are used; every loop is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
# Parsed as one block before it runs (see scripts/soak.sh).
{

series=10000000
limit_mb=256
check_interval=""
binary=""
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    --series) series=$2; shift 2 ;;
    --limit-mb) limit_mb=$2; shift 2 ;;
    --check-interval) check_interval=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "flood: unknown option $1" >&2; exit 64 ;;
    esac
done
per_cycle=50000 # distinct series per loadgen cycle: 10 requests of 5,000 points
[ "$series" -ge "$per_cycle" ] && [ $((series % per_cycle)) -eq 0 ] ||
    { echo "flood: --series must be a positive multiple of $per_cycle" >&2; exit 64; }
cycles=$((series / per_cycle))

script=flood
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

limit_bytes=$((limit_mb * 1024 * 1024))
cat >"$work/leakwatch.yaml" <<EOF
receivers:
  grpc:
    listen: 127.0.0.1:0
  http:
    listen: 127.0.0.1:0
  memory_limiter:
    limit_bytes: $limit_bytes
    soft_limit_percent: 80
${check_interval:+    check_interval: $check_interval}
admin:
  listen: 127.0.0.1:0
series:
  max_series: 100000000
detector:
  short_window: 30s
  long_window: 60s
log:
  format: json
  level: info
EOF

"$binary" --config "$work/leakwatch.yaml" >"$work/leakwatch.log" 2>&1 &
lw_pid=$!
pids+=("$lw_pid")
deadline=$((SECONDS + 60))
until grep -q '"leakwatch is running."' "$work/leakwatch.log"; do
    kill -0 "$lw_pid" 2>/dev/null || fail "leakwatch exited during start-up (log: $work/leakwatch.log)"
    [ "$SECONDS" -lt "$deadline" ] || fail "leakwatch not running within 60 s"
    sleep 0.2
done
listening() { grep -m1 "\"$1\"" "$work/leakwatch.log" | grep -o '127\.0\.0\.1:[0-9]*' | head -n 1; }
grpc=$(listening "OTLP/gRPC receiver listening.")
admin="http://$(listening "Admin listener listening.")"
curl -fsS --max-time 5 "$admin/readyz" >/dev/null || fail "leakwatch not ready"

# VmRSS every 100 ms until leakwatch exits (kB, one per line).
(
    while kill -0 "$lw_pid" 2>/dev/null; do
        awk '/^VmRSS:/ {print $2}' "/proc/$lw_pid/status" 2>/dev/null || true
        sleep 0.1
    done
) >"$work/rss.txt" &
pids+=("$!")

metric() { # name → value from /metrics
    curl -fsS --max-time 10 "$admin/metrics" | awk -v n="$1" '$1 == n {print int($2)}'
}

# The existing fleet: 4 processes × 40 series, one cycle (event time 1 s) per
# second of wall time; process 3 leaks. It runs through the flood and after,
# for 100 s: long enough for the detector (short window 30 s) to judge it.
fleet_seconds=100
"$loadgen" --endpoint "http://$grpc" --series 160 --resources 4 --rate 160 \
    --interval 1s --warmup 0s --duration "${fleet_seconds}s" --json \
    >"$work/fleet.json" 2>"$work/fleet.err" &
fleet_pid=$!
pids+=("$fleet_pid")
deadline=$((SECONDS + 30))
until [ "$(metric leakwatch_series || echo 0)" -ge 160 ] 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the fleet's 160 series were not created within 30 s"
    sleep 0.2
done
say "leakwatch pid $lw_pid, ceiling $limit_mb MiB (soft 80 %); fleet of 4 processes running;" \
    "flooding $series distinct series"

flood_start=$SECONDS
"$loadgen" --endpoint "http://$grpc" --size collector --series "$per_cycle" --distinct \
    --cycles "$cycles" --warmup 0s --duration 3600s --timeout 30s --json \
    >"$work/flood.json" 2>"$work/flood.err" && flood_rc=0 || flood_rc=$?
flood_seconds=$((SECONDS - flood_start))
kill -0 "$lw_pid" 2>/dev/null || fail "leakwatch died during the flood (log: $work/leakwatch.log)"
[ -s "$work/flood.json" ] || fail "the flood produced no report (exit $flood_rc): $(cat "$work/flood.err")"

# The fleet's leak must be judged with the table full: give the detector
# (short window 30 s) time after the flood, at least 60 s after the fleet began.
verdict() { # → "leaking-state healthy-states" of the fleet from /api/v1/leaks
    curl -fsS --max-time 10 "$admin/api/v1/leaks" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
def state(i):
    for it in items:
        attrs = json.dumps(it["resource"])
        if f"loadgen-instance-{i:06}" in attrs:
            return it["state"]
    return "ok"
print(state(3), ",".join(state(i) for i in range(3)))
'
}
deadline=$((SECONDS + 120))
while :; do
    read -r leaking healthy < <(verdict || echo "unknown unknown")
    case "$leaking" in suspected | confirmed) break ;; esac
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 2
done
sleep 2
read -r leaking healthy < <(verdict || echo "unknown unknown")
rss_after=$(awk '/^VmRSS:/ {print $2}' "/proc/$lw_pid/status")
curl -fsS --max-time 10 "$admin/metrics" >"$work/metrics.txt" || fail "/metrics unreachable"
curl -fsS --max-time 10 "$admin/api/v1/leaks" >"$work/leaks.json" || true
wait "$fleet_pid" && fleet_rc=0 || fleet_rc=$?
[ -s "$work/fleet.json" ] || fail "the fleet produced no report (exit $fleet_rc): $(cat "$work/fleet.err")"

kill -TERM "$lw_pid"
stop_deadline=$((SECONDS + 60))
while kill -0 "$lw_pid" 2>/dev/null && [ "$SECONDS" -lt "$stop_deadline" ]; do sleep 0.2; done
kill -0 "$lw_pid" 2>/dev/null && fail "leakwatch did not exit within 60 s of SIGTERM"
wait "$lw_pid" && lw_rc=0 || lw_rc=$?

python3 - "$work" "$series" "$limit_mb" "$flood_seconds" "$leaking" "$healthy" "$lw_rc" "$rss_after" <<'EOF'
import json, re, sys

work, series, limit_mb, flood_seconds, leaking, healthy, lw_rc, rss_after = sys.argv[1:]
series, limit_mb, flood_seconds, lw_rc = int(series), int(limit_mb), int(flood_seconds), int(lw_rc)
problems = []
flood = json.load(open(f"{work}/flood.json"))
fleet = json.load(open(f"{work}/fleet.json"))
metrics = open(f"{work}/metrics.txt").read()
def metric(name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+]+)$", metrics, re.M)
    return int(float(m.group(1))) if m else 0
rss = [int(l) / 1024 for l in open(f"{work}/rss.txt").read().split() if l.isdigit()]

per_request = int(round(flood["points_per_request"]))
refused_requests = flood["errors"].get("grpc Unavailable", 0)
other_errors = sum(flood["errors"].values()) - refused_requests
answered = flood["points"]  # points in requests answered OK
sent = answered + sum(flood["errors"].values()) * per_request
rejected = flood["rejected_points"]
accepted = answered - rejected
refused = rejected + refused_requests * per_request
tracked = metric("leakwatch_series")

print()
print(f"== flood summary: {series:,} distinct series, ceiling {limit_mb} MiB (soft limit {0.8 * limit_mb:.0f} MiB)")
print(f"points sent: {sent:,} in {flood_seconds} s ({sent / max(flood_seconds, 1):,.0f} points/s); "
      f"accepted {accepted:,}; refused {refused:,} ({rejected:,} in partial_success.rejected_data_points, "
      f"{refused_requests * per_request:,} in {refused_requests:,} requests refused UNAVAILABLE)"
      + (f"; {other_errors} other failed requests {flood['errors']}" if other_errors else ""))
own_refused = metric('leakwatch_points_anomalies_total{kind="memory_limit"}')
print(f"leakwatch: {own_refused:,} points counted as refused for memory; series tracked {tracked:,} "
      f"(created {metric('leakwatch_series_created_total'):,}, resources {metric('leakwatch_resources'):,}); "
      f"limiter pressure at the end {metric('leakwatch_memory_limiter_pressure')} (0 normal, 1 soft, 2 hard)")
if rss:
    print(f"RSS: max {max(rss):.1f} MiB of a {limit_mb} MiB ceiling ({max(rss) / limit_mb:.0%}); "
          f"{int(rss_after) / 1024:.1f} MiB after the flood; {len(rss)} samples every 100 ms")
print(f"fleet (existing series): {fleet['points']:,} points in {fleet['requests']:,} requests, "
      f"{fleet['rejected_points']} rejected, {sum(fleet['errors'].values())} failed requests; "
      f"leaking process {leaking}; healthy processes {healthy}")

if not rss:
    problems.append("no RSS samples")
elif max(rss) >= limit_mb:
    problems.append(f"RSS {max(rss):.1f} MiB reached the {limit_mb} MiB ceiling")
if rejected and own_refused < rejected:
    problems.append(f"loadgen saw {rejected:,} points rejected, leakwatch counted {own_refused:,}")
if refused == 0:
    problems.append("nothing was refused: the limiter never engaged (raise --series or lower --limit-mb)")
if sent < series:
    problems.append(f"only {sent:,} of {series:,} points sent")
if other_errors:
    problems.append(f"{other_errors} requests failed other than UNAVAILABLE: {flood['errors']}")
if fleet["rejected_points"] or fleet["errors"]:
    problems.append(f"the existing series were refused: {fleet['rejected_points']} points rejected, "
                    f"failed requests {fleet['errors']}")
if leaking not in ("suspected", "confirmed"):
    problems.append(f"the leaking process was not detected (state {leaking})")
if any(s != "ok" for s in healthy.split(",")):
    problems.append(f"a healthy process was flagged ({healthy})")
if lw_rc != 0:
    problems.append(f"leakwatch exited {lw_rc} on SIGTERM")
if problems:
    print("flood: FAILED: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("flood: passed: RSS stayed under the ceiling and the leaking process was detected")
EOF
exit
}
