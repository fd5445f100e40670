#!/usr/bin/env bash
# leakwatch's benchmark: in one run on one machine, leakwatch (detection on; without and with
# forwarding to a blackhole downstream) and rotel (PyPI `rotel`, `--exporter blackhole`; and, as
# the like-for-like peer of forwarding, `--exporter otlp` to the same blackhole downstream) under
# the same load from `leakwatch-loadgen` (OTLP/gRPC), at both request sizes:
#
#   1. throughput, closed loop (as fast as each answers), best of 2 rounds: points/s, the ratio
#      leakwatch/rotel, and CPU time per million points;
#   2. p99 export latency at half of each one's own max throughput (open loop), and the latency
#      the system adds: its p99 minus the p99 of a baseline at the same rate (the blackhole sink,
#      which answers without looking at the request: the generator, HTTP/2 and TCP alone);
#      at sdk size 5 alternating rounds, the median counts;
#   3. CPU at a fixed 70,000 points/s (the OpenTelemetry Collector testbed's standard metrics
#      load: 10,000 metrics/s × 7 points, 100 metrics = 700 points per request), from
#      /proc/PID/stat utime+stime over the run, at that request shape and at both sizes;
#   4. RSS after tracking 100k and 1M series (VmRSS after a small warm-up load → after the
#      series are tracked), in bytes per series.
#
# Sizes: sdk = 40 points of one process per request (fleet of 40,000 series / 1,000 processes,
# 128 requests in flight); collector = 5,000 points over 100 processes per request (fleet of
# 80,000 series / 1,600 processes, 16 requests in flight; workers never share a series).
#
# Prints a Markdown report with PASS/FAIL per target and writes it to target/bench/latest.md
# (raw loadgen reports: target/bench/*.json). Everything listens on 127.0.0.1 only; every wait
# is bounded in time; only processes this script started are stopped.
#
# Usage: scripts/bench.sh [--quick] [--no-build] [--duration SECONDS] [--systems LIST] [--sizes LIST]
#                         [--no-rss] [--only memory] [--binary PATH]
#   --quick        one round of a few seconds per run, smaller series counts (smoke test of the script)
#   --no-build     use the existing target/release/leakwatch
#   --systems      comma-separated subset of leakwatch,leakwatch+fwd,rotel,rotel+fwd (default:
#                  all four); ratios "vs rotel" need rotel in the list, "vs rotel+fwd" rotel+fwd
#   --sizes        comma-separated subset of sdk,collector (default: both)
#   --no-rss       skip the memory-per-series runs (they also run only when leakwatch is in --systems)
#   --only memory  run part 4 only (RSS per series, leakwatch alone; no rotel needed), ~2 minutes;
#                  the report goes to target/bench/latest-memory.md
#   --binary PATH  measure this leakwatch binary instead of target/release/leakwatch (implies
#                  --no-build), e.g. a copy built from another commit for a before/after figure
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/target/bench"
mkdir -p "$OUT"

ARGS="$*"
QUICK=0
BUILD=1
RSS=1
SYSTEMS=(leakwatch leakwatch+fwd rotel rotel+fwd)
SIZES=(sdk collector)
ONLY=all
LEAKWATCH=""
DURATION=15
WARMUP=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --duration) DURATION="$2"; shift ;;
    --systems) IFS=, read -r -a SYSTEMS <<<"$2"; shift ;;
    --sizes) IFS=, read -r -a SIZES <<<"$2"; shift ;;
    --no-rss) RSS=0 ;;
    --only)
      case "${2:-}" in
        memory) ONLY=memory ;;
        *) echo "bench: --only takes: memory" >&2; exit 64 ;;
      esac
      shift ;;
    --binary) LEAKWATCH="$(realpath "$2")"; BUILD=0; shift ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1" >&2; exit 64 ;;
  esac
  shift
done
RSS_SERIES=(100000 1000000)
ROUNDS=2
LAT_ROUNDS=5
if [ "$QUICK" = 1 ]; then
  DURATION=3
  WARMUP=1
  RSS_SERIES=(10000 100000)
  ROUNDS=1
  LAT_ROUNDS=1
fi

CPU_RATE=70000
# Enough requests in flight to saturate either system (rotel's latency is high: it needs them).
SDK_ARGS=(--size sdk --series 40000 --concurrency 128 --connections 8)
COLLECTOR_ARGS=(--size collector --series 80000 --concurrency 16 --connections 4)
# The testbed's request shape for the CPU target: 700 points per request (its batch of 100
# metrics × 7 points), here 14 processes × 50 series so that detection runs on every point.
TESTBED_ARGS=(--size collector --series 70000 --points-per-request 700 --concurrency 16 --connections 4)
# Targets.
MIN_RATIO=2
MAX_BYTES_PER_SERIES=512
MAX_CPU_PERCENT=5
MAX_P99_MS=1

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- build and find the systems
if [ "$BUILD" = 1 ]; then
  say "building leakwatch (release)"
  cargo build --release --locked -p leakwatch -p leakwatch-tools --bin leakwatch --bin leakwatch-loadgen >&2
fi
LEAKWATCH="${LEAKWATCH:-$ROOT/target/release/leakwatch}"
[ -x "$LEAKWATCH" ] || die "$LEAKWATCH not found (run without --no-build)"
LOADGEN="$(dirname "$LEAKWATCH")/leakwatch-loadgen"
[ -x "$LOADGEN" ] || die "$LOADGEN not found (cargo build --release --bin leakwatch-loadgen)"

find_rotel() {
  local c
  for c in "${LEAKWATCH_TEST_ROTEL:-}" "$ROOT/.test-env/bin/rotel-agent" \
           "$ROOT"/.test-env/venv/lib/python3*/site-packages/rotel/rotel-agent; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}
ROTEL_VERSION="rotel not run"
if [ "$ONLY" = all ]; then
  ROTEL="$(find_rotel || true)"
  if [ -z "$ROTEL" ]; then
    say "rotel not found; running scripts/setup-test-env.sh"
    bash "$ROOT/scripts/setup-test-env.sh" >&2
    ROTEL="$(find_rotel)" || die "rotel-agent still not found after setup-test-env.sh"
  fi
  ROTEL_VERSION="$("$ROTEL" --version 2>/dev/null | head -n1)"
fi

# ---------------------------------------------------------------- process helpers
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_ports() { # N → N free loopback ports, one per line
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_port() { # PORT PID: until 127.0.0.1:PORT accepts, at most 15 s
  local port="$1" pid="$2" i
  for i in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "process $pid exited before 127.0.0.1:$port opened"
    sleep 0.1
  done
  die "127.0.0.1:$port not accepting after 15 s"
}

stop() { # PID: SIGTERM, then SIGKILL after 10 s; forgotten afterwards so it is never signalled again
  local pid="$1" i keep=()
  if kill -TERM "$pid" 2>/dev/null; then
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for i in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$i" = "$pid" ] || keep+=("$i"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

cpu_ticks() { # PID → utime+stime in clock ticks (all threads)
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
CLK_TCK="$(getconf CLK_TCK)"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Waits (up to 20 s) until PID's RSS holds still — within 0.5 % over 2 s — so what is measured is
# what the process keeps, not memory its allocator has freed but not yet returned (jemalloc
# returns dirty pages after a decay time, glibc unmaps large blocks at once); prints the RSS.
settled_rss_kib() {
  local prev cur i
  prev="$(rss_kib "$1")"
  for i in $(seq 1 10); do
    sleep 2
    cur="$(rss_kib "$1")"
    if python3 -c "import sys; sys.exit(0 if abs($cur - $prev) <= 0.005 * $prev else 1)"; then break; fi
    prev="$cur"
  done
  echo "$cur"
}

json() { # FILE KEY → value (python3: nested keys with dots)
  python3 - "$1" "$2" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(v)
EOF
}

calc() { python3 -c "print($1)"; }
fmt0() { python3 -c "print(f'{$1:,.0f}')"; }

# Started systems: SYS_PID, SYS_GRPC (port), SYS_ADMIN (leakwatch only), SINK_PID.
SINK_PID=""
start_sink() {
  local port
  port="$(free_ports 1)"
  "$LOADGEN" --sink "127.0.0.1:$port" --duration 2h --warmup 0s >"$OUT/sink.log" 2>&1 &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  wait_port "$port" "$SINK_PID"
  SINK_PORT="$port"
  SINK_ENDPOINT="http://127.0.0.1:$port"
}

start_leakwatch() { # [DOWNSTREAM]
  local ports
  mapfile -t ports < <(free_ports 3)
  local args=(--grpc-listen "127.0.0.1:${ports[0]}" --http-listen "127.0.0.1:${ports[1]}"
              --admin-listen "127.0.0.1:${ports[2]}" --log-level warn --max-series 1200000)
  if [ -n "${1:-}" ]; then args+=(--downstream "$1"); fi
  "$LEAKWATCH" "${args[@]}" >>"$OUT/leakwatch.log" 2>&1 &
  SYS_PID=$!
  PIDS+=("$SYS_PID")
  SYS_GRPC="${ports[0]}"
  SYS_ADMIN="${ports[2]}"
  wait_port "$SYS_GRPC" "$SYS_PID"
  wait_port "$SYS_ADMIN" "$SYS_PID"
}

start_rotel() { # [DOWNSTREAM]: forward there over OTLP/gRPC, uncompressed as leakwatch does
  local ports attempt exporter=(--exporter blackhole)
  if [ -n "${1:-}" ]; then
    exporter=(--exporter otlp --otlp-exporter-endpoint "$1" --otlp-exporter-protocol grpc
              --otlp-exporter-compression none)
  fi
  for attempt in 1 2 3; do
    mapfile -t ports < <(free_ports 2)
    NO_COLOR=1 "$ROTEL" start --otlp-grpc-endpoint "127.0.0.1:${ports[0]}" \
      --otlp-http-endpoint "127.0.0.1:${ports[1]}" "${exporter[@]}" >>"$OUT/rotel.log" 2>&1 &
    SYS_PID=$!
    PIDS+=("$SYS_PID")
    SYS_GRPC="${ports[0]}"
    SYS_ADMIN=""
    sleep 0.2
    if kill -0 "$SYS_PID" 2>/dev/null; then
      wait_port "$SYS_GRPC" "$SYS_PID"
      return 0
    fi
    say "rotel did not start (port taken?); retrying"
  done
  die "rotel failed to start; see $OUT/rotel.log"
}

start_system() { # NAME: leakwatch | leakwatch+fwd | rotel | rotel+fwd
  case "$1" in
    leakwatch) start_leakwatch ;;
    leakwatch+fwd) start_sink; start_leakwatch "$SINK_ENDPOINT" ;;
    rotel) start_rotel ;;
    rotel+fwd) start_sink; start_rotel "$SINK_ENDPOINT" ;;
  esac
}

stop_system() {
  stop "$SYS_PID"
  if [ -n "$SINK_PID" ]; then stop "$SINK_PID"; SINK_PID=""; fi
}

loadgen() { # OUTFILE ARGS... → runs loadgen against the current system, JSON into OUTFILE
  local out="$1"; shift
  if ! "$LOADGEN" --endpoint "http://127.0.0.1:$SYS_GRPC" --json "$@" >"$out" 2>"$out.err"; then
    # Exit 1 means some requests failed; the report is still written.
    [ -s "$out" ] || die "loadgen failed: $(cat "$out.err")"
  fi
}

size_args() { # SIZE → its loadgen arguments
  case "$1" in
    sdk) echo "${SDK_ARGS[@]}" ;;
    collector) echo "${COLLECTOR_ARGS[@]}" ;;
    testbed) echo "${TESTBED_ARGS[@]}" ;;
  esac
}

# ---------------------------------------------------------------- the machine
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
say "machine: $(nproc) CPUs ($CPU_MODEL), load average $LOAD_BEFORE"
if python3 -c "import sys; sys.exit(0 if float('${LOAD_BEFORE%% *}') > 0.5 else 1)"; then
  say "WARNING: the machine is busy (load average $LOAD_BEFORE): figures will be noisy"
fi
: >"$OUT/leakwatch.log"; : >"$OUT/rotel.log"

for sys in "${SYSTEMS[@]}"; do
  case "$sys" in leakwatch|leakwatch+fwd|rotel|rotel+fwd) ;; *) die "unknown system $sys" ;; esac
done
for size in "${SIZES[@]}"; do
  case "$size" in sdk|collector) ;; *) die "unknown size $size" ;; esac
done
has() { local x; for x in "${@:2}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
has leakwatch "${SYSTEMS[@]}" || RSS=0
HAS_ROTEL=0; has rotel "${SYSTEMS[@]}" && HAS_ROTEL=1
HAS_ROTEL_FWD=0; has rotel+fwd "${SYSTEMS[@]}" && HAS_ROTEL_FWD=1
# Part 3's shapes: the testbed's (the target) and the sizes of the run.
CPU_SIZES=(testbed "${SIZES[@]}")
declare -A MAX P99 P50 BASE_P99 ADDED_ROUNDS LAT_ROUNDS_OF ERRS CPU RATE_DONE RPS_DONE CPU_PER_M CLIENT_CPU ROUND_FIGS

if [ "$ONLY" = all ]; then
  # ---------------------------------------------------------------- 1: throughput (best of ROUNDS)
  # Noise from other work only ever lowers a max, so each system keeps its best round; the rounds
  # alternate the systems so that a noisy minute does not hit one system only.
  for round in $(seq 1 "$ROUNDS"); do
    for size in "${SIZES[@]}"; do
      read -r -a sargs <<<"$(size_args "$size")"
      for sys in "${SYSTEMS[@]}"; do
        start_system "$sys"
        f="$OUT/max-$size-$sys-$round.json"
        say "throughput (round $round/$ROUNDS): $sys, $size, ${WARMUP}s warm-up + ${DURATION}s closed loop"
        loadgen "$OUT/warmup.json" "${sargs[@]}" --duration "${WARMUP}s" --warmup 0s
        t0="$(cpu_ticks "$SYS_PID")"
        loadgen "$f" "${sargs[@]}" --duration "${DURATION}s" --warmup 0s
        t1="$(cpu_ticks "$SYS_PID")"
        stop_system
        got="$(json "$f" points_per_sec)"
        ROUND_FIGS[$size,$sys]="${ROUND_FIGS[$size,$sys]:-}$(fmt0 "$got") "
        if [ -n "${MAX[$size,$sys]:-}" ] && python3 -c "import sys; sys.exit(0 if $got <= ${MAX[$size,$sys]} else 1)"; then
          continue
        fi
        MAX[$size,$sys]="$got"
        ERRS[$size,$sys]="$(python3 -c "import json; print(sum(json.load(open('$f'))['errors'].values()))")"
        # CPU the system used per million points accepted, and the generator's share of the machine.
        CPU_PER_M[$size,$sys]="$(calc "round(($t1 - $t0) / $CLK_TCK / max(1, $(json "$f" points)) * 1e6, 3)")"
        CLIENT_CPU[$size,$sys]="$(calc "round(100 * $(json "$f" client_cpu_seconds) / $(json "$f" seconds), 1)")"
      done
    done
  done

  # ---------------------------------------------------------------- 2: latency at half of max
  # Each system at half of its own max, then the baseline at the same rate: the blackhole sink
  # answers every export without decoding it, so its latency is what the generator, HTTP/2,
  # TCP and the scheduler of this machine cost; the system's p99 minus the baseline's is the
  # latency the system adds. On a shared 2-core machine one run's p99 moves by a millisecond
  # (a stall of the VM lands in the tail), so at sdk size (the target's) each system and its
  # baseline run LAT_ROUNDS times, alternating, and the round with the median added p99 counts.
  for size in "${SIZES[@]}"; do
    read -r -a sargs <<<"$(size_args "$size")"
    rounds=1
    [ "$size" = sdk ] && rounds="$LAT_ROUNDS"
    for round in $(seq 1 "$rounds"); do
      for sys in "${SYSTEMS[@]}"; do
        start_system "$sys"
        half="$(calc "round(${MAX[$size,$sys]} / 2)")"
        f="$OUT/half-$size-$sys-$round.json"
        say "latency (round $round/$rounds): $sys, $size, open loop at $half points/s"
        loadgen "$f" "${sargs[@]}" --rate "$half" --duration "${DURATION}s" --warmup "${WARMUP}s"
        stop_system
        start_sink
        b="$OUT/half-$size-$sys-$round-baseline.json"
        say "latency (round $round/$rounds): baseline (blackhole sink), $size, open loop at $half points/s"
        SYS_GRPC="$SINK_PORT" loadgen "$b" "${sargs[@]}" --rate "$half" --duration "${DURATION}s" --warmup "${WARMUP}s"
        stop "$SINK_PID"; SINK_PID=""
        LAT_ROUNDS_OF[$size,$sys]="${LAT_ROUNDS_OF[$size,$sys]:-} $f:$b"
      done
    done
    for sys in "${SYSTEMS[@]}"; do
      # The median round by added p99 (of 1 or LAT_ROUNDS).
      read -r f b list < <(python3 - ${LAT_ROUNDS_OF[$size,$sys]} <<'PY'
import json, sys
rounds = []
for pair in sys.argv[1:]:
    f, b = pair.split(":")
    p99 = json.load(open(f))["latency_ms"]["p99"]
    base = json.load(open(b))["latency_ms"]["p99"]
    rounds.append((p99 - base, f, b))
ordered = sorted(rounds)
_, f, b = ordered[(len(ordered) - 1) // 2]
print(f, b, ",".join(str(round(r[0], 3)) for r in rounds))
PY
)
      P99[$size,$sys]="$(json "$f" latency_ms.p99)"
      P50[$size,$sys]="$(json "$f" latency_ms.p50)"
      BASE_P99[$size,$sys]="$(json "$b" latency_ms.p99)"
      ADDED_ROUNDS[$size,$sys]="$list"
    done
  done

  # ---------------------------------------------------------------- 3: CPU at 70k points/s
  for size in "${CPU_SIZES[@]}"; do
    read -r -a sargs <<<"$(size_args "$size")"
    for sys in "${SYSTEMS[@]}"; do
      start_system "$sys"
      f="$OUT/cpu-$size-$sys.json"
      say "cpu: $sys, $size, $CPU_RATE points/s for ${DURATION}s"
      # Warm up (series created, connections open) before the measured run.
      loadgen "$OUT/cpu-warmup.json" "${sargs[@]}" --rate "$CPU_RATE" --duration 1s --warmup 0s
      t0="$(cpu_ticks "$SYS_PID")"; s0="$(date +%s.%N)"
      loadgen "$f" "${sargs[@]}" --rate "$CPU_RATE" --duration "${DURATION}s" --warmup 0s
      t1="$(cpu_ticks "$SYS_PID")"; s1="$(date +%s.%N)"
      CPU[$size,$sys]="$(calc "round(100 * ($t1 - $t0) / $CLK_TCK / ($s1 - $s0), 2)")"
      RATE_DONE[$size,$sys]="$(json "$f" points_per_sec)"
      RPS_DONE[$size,$sys]="$(json "$f" requests_per_sec)"
      stop_system
    done
  done
fi  # parts 1–3

# ---------------------------------------------------------------- 4: RSS per tracked series
declare -A RSS_BASE RSS_AFTER RSS_SERIES_GOT RSS_TOTAL BPS
[ "$RSS" = 1 ] || RSS_SERIES=()
for n in "${RSS_SERIES[@]+"${RSS_SERIES[@]}"}"; do
  start_leakwatch
  say "rss: $n series"
  # Warm-up: 5,000 series, so transport buffers and allocator arenas exist before the baseline.
  loadgen "$OUT/rss-warmup.json" --size collector --series 5000 --concurrency 1 --cycles 3 --warmup 0s --duration 60s
  base_series="$(curl -sf "http://127.0.0.1:$SYS_ADMIN/metrics" | awk '$1 == "leakwatch_series" { print $2 }')"
  RSS_BASE[$n]="$(settled_rss_kib "$SYS_PID")"
  loadgen "$OUT/rss-$n.json" --size collector --series "$n" --resources "$((n / 100))" \
    --points-per-request 5000 --concurrency 2 --cycles 2 --warmup 0s --duration 300s
  got="$(curl -sf "http://127.0.0.1:$SYS_ADMIN/metrics" | awk '$1 == "leakwatch_series" { print $2 }')"
  RSS_AFTER[$n]="$(settled_rss_kib "$SYS_PID")"
  RSS_TOTAL[$n]="$got"
  # The warm-up's series are among the loaded ones: count only the new ones.
  RSS_SERIES_GOT[$n]="$((got - base_series))"
  BPS[$n]="$(calc "round((${RSS_AFTER[$n]} - ${RSS_BASE[$n]}) * 1024 / max(1, ${RSS_SERIES_GOT[$n]}))")"
  stop "$SYS_PID"
done

LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report
# A partial run does not overwrite the full report.
if [ "$ONLY" = all ]; then REPORT="$OUT/latest.md"; else REPORT="$OUT/latest-$ONLY.md"; fi
pf() { if python3 -c "import sys; sys.exit(0 if $1 else 1)"; then echo PASS; else echo FAIL; fi; }
fmt() { python3 -c "print(f'{$1:,.0f}')"; }
{
  echo "## Benchmark results"
  echo
  echo "Command: \`scripts/bench.sh${ARGS:+ $ARGS}\` — $(date -u +%Y-%m-%dT%H:%MZ), leakwatch $("$LEAKWATCH" --version | awk '{print $2}') ($(if [ "$LEAKWATCH" = "$ROOT/target/release/leakwatch" ]; then git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'; else echo "binary $LEAKWATCH"; fi)), $ROTEL_VERSION."
  echo "Machine: $(nproc) CPUs ($CPU_MODEL); load average before $LOAD_BEFORE, after $LOAD_AFTER."
  if [ "$ONLY" = all ]; then
  echo "Load: \`leakwatch-loadgen\`, OTLP/gRPC on loopback, on the same machine as the system under test; ${DURATION}s measured after ${WARMUP}s warm-up per run."
  echo "sdk: 40 points/request, 1 process per request, 40,000 series, 128 workers on 8 connections; collector: 5,000 points/request over 100 processes, 80,000 series, 16 workers on 4 connections;"
  echo "testbed (part 3 only): 700 points/request over 14 processes, 70,000 series, 16 workers on 4 connections."
  echo "leakwatch+fwd and rotel+fwd (\`--exporter otlp\`, uncompressed) forward to a blackhole gRPC sink (\`leakwatch-loadgen --sink\`) on the same machine."
  echo
  echo "### Throughput (closed loop)"
  echo
  echo "| size | system | points/s | vs rotel | vs rotel+fwd | failed requests | CPU-s per M points | rotel CPU / this CPU | loadgen CPU % |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for size in "${SIZES[@]}"; do
    for sys in "${SYSTEMS[@]}"; do
      ratio="–"; ratio_fwd="–"; eff="–"
      if [ "$HAS_ROTEL" = 1 ]; then
        ratio="$(calc "round(${MAX[$size,$sys]} / max(1, ${MAX[$size,rotel]}), 2)")×"
        eff="$(calc "round(${CPU_PER_M[$size,rotel]} / max(1e-9, ${CPU_PER_M[$size,$sys]}), 2)")×"
      fi
      if [ "$HAS_ROTEL_FWD" = 1 ]; then
        ratio_fwd="$(calc "round(${MAX[$size,$sys]} / max(1, ${MAX[$size,rotel+fwd]}), 2)")×"
      fi
      echo "| $size | $sys | $(fmt "${MAX[$size,$sys]}") | ${ratio} | ${ratio_fwd} | ${ERRS[$size,$sys]} | ${CPU_PER_M[$size,$sys]} | ${eff} | ${CLIENT_CPU[$size,$sys]} |"
    done
  done
    echo
    echo "CPU-s per M points: CPU time (all threads, /proc/PID/stat) the system used per million points it accepted at max rate;"
    echo "its inverse ratio is the throughput ratio the two would have if neither shared the machine with the load generator."
    echo "loadgen CPU %: the generator's own CPU use during that run, in % of one core (taken from the same 2 cores)."
    echo "Forwarding systems share the 2 cores with the sink as well."
    echo "Best of $ROUNDS rounds (points/s of each round:$(for size in "${SIZES[@]}"; do for sys in "${SYSTEMS[@]}"; do printf ' %s %s: %s;' "$size" "$sys" "${ROUND_FIGS[$size,$sys]% }"; done; done))."
    echo
    echo "### Latency at half of each one's max (open loop)"
    echo
    echo "| size | system | rate (points/s) | p50 (ms) | p99 (ms) | baseline p99 at that rate (ms) | added p99 (ms) | added p99 of each round (ms) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    for size in "${SIZES[@]}"; do
      for sys in "${SYSTEMS[@]}"; do
        echo "| $size | $sys | $(fmt "${MAX[$size,$sys]} / 2") | $(calc "round(${P50[$size,$sys]}, 3)") | $(calc "round(${P99[$size,$sys]}, 3)") | $(calc "round(${BASE_P99[$size,$sys]}, 3)") | $(calc "round(${P99[$size,$sys]} - ${BASE_P99[$size,$sys]}, 3)") | ${ADDED_ROUNDS[$size,$sys]} |"
      done
    done
    echo
    echo "Baseline: the same generator at the same rate against the blackhole sink, which answers every export without decoding it:"
    echo "the latency of the generator, HTTP/2, TCP and this machine's scheduler (all on the same 2 cores). Added p99 = p99 − baseline p99."
    echo "At sdk size each system and its baseline ran $LAT_ROUNDS times, alternating; the row shows the round with the median added p99."
    echo
    echo "### CPU at $(fmt $CPU_RATE) points/s (% of one core)"
    echo
    echo "| request shape | system | achieved points/s | requests/s | CPU % |"
    echo "| --- | --- | ---: | ---: | ---: |"
    for size in "${CPU_SIZES[@]}"; do
      for sys in "${SYSTEMS[@]}"; do
        echo "| $size | $sys | $(fmt "${RATE_DONE[$size,$sys]}") | $(fmt "${RPS_DONE[$size,$sys]}") | ${CPU[$size,$sys]} |"
      done
    done
  echo
  fi  # parts 1-3
  if [ "$RSS" = 1 ]; then
  echo "### Memory per tracked series (leakwatch)"
  echo
  echo "| series tracked | of which new | RSS before (MiB) | RSS after (MiB) | bytes per new series |"
  echo "| ---: | ---: | ---: | ---: | ---: |"
  for n in "${RSS_SERIES[@]}"; do
    echo "| $(fmt "${RSS_TOTAL[$n]}") | $(fmt "${RSS_SERIES_GOT[$n]}") | $(calc "round(${RSS_BASE[$n]} / 1024, 1)") | $(calc "round(${RSS_AFTER[$n]} / 1024, 1)") | ${BPS[$n]} |"
  done
  echo
  echo "RSS before: after a warm-up of 5,000 series (transport buffers and allocator arenas exist); after: once every series got 2 points; both once RSS held still (within 0.5 % over 2 s, at most 20 s)."
  echo
  fi
  echo "### Targets (issue #5: detection on)"
  echo
  for size in "${SIZES[@]}"; do
    [ "$HAS_ROTEL" = 1 ] && [ "$ONLY" = all ] && has leakwatch "${SYSTEMS[@]}" || continue
    r="$(calc "round(${MAX[$size,leakwatch]} / max(1, ${MAX[$size,rotel]}), 2)")"
    echo "- $(pf "$r >= $MIN_RATIO") throughput ≥ ${MIN_RATIO}× rotel, $size, detection on: ${r}×"
  done
  for n in "${RSS_SERIES[@]+"${RSS_SERIES[@]}"}"; do
    echo "- $(pf "${BPS[$n]} <= $MAX_BYTES_PER_SERIES") ≤ $MAX_BYTES_PER_SERIES bytes per tracked series at $(fmt "${RSS_TOTAL[$n]}") series: ${BPS[$n]}"
  done
  cpu_check() { # SYSTEM
    echo "- $(pf "${CPU[testbed,$1]} <= $MAX_CPU_PERCENT") CPU ≤ ${MAX_CPU_PERCENT}% of one core at $(fmt $CPU_RATE) points/s in the testbed's requests (700 points), $1: ${CPU[testbed,$1]}%"
  }
  p99_check() { # SYSTEM
    local added
    added="$(calc "round(${P99[sdk,$1]} - ${BASE_P99[sdk,$1]}, 3)")"
    echo "- $(pf "$added <= $MAX_P99_MS") p99 added latency ≤ ${MAX_P99_MS} ms at half load, sdk, $1: ${added} ms (p99 $(calc "round(${P99[sdk,$1]}, 3)") ms, baseline $(calc "round(${BASE_P99[sdk,$1]}, 3)") ms; rounds: ${ADDED_ROUNDS[sdk,$1]})"
  }
  if [ "$ONLY" = all ] && has leakwatch "${SYSTEMS[@]}"; then
    cpu_check leakwatch
    has sdk "${SIZES[@]}" && p99_check leakwatch
  fi
  if [ "$ONLY" = all ] && has leakwatch+fwd "${SYSTEMS[@]}"; then
    echo
    echo "### The same with forwarding (our own checks)"
    echo
    for size in "${SIZES[@]}"; do
      [ "$HAS_ROTEL_FWD" = 1 ] || continue
      r="$(calc "round(${MAX[$size,leakwatch+fwd]} / max(1, ${MAX[$size,rotel+fwd]}), 2)")"
      echo "- $(pf "$r >= $MIN_RATIO") throughput ≥ ${MIN_RATIO}× rotel forwarding to the same sink, $size: ${r}×"
    done
    for size in "${SIZES[@]}"; do
      [ "$HAS_ROTEL" = 1 ] || continue
      r="$(calc "round(${MAX[$size,leakwatch+fwd]} / max(1, ${MAX[$size,rotel]}), 2)")"
      echo "- $(pf "$r >= $MIN_RATIO") throughput ≥ ${MIN_RATIO}× rotel with no downstream (only leakwatch pays for forwarding, and its sink shares the cores), $size: ${r}×"
    done
    cpu_check leakwatch+fwd
    has sdk "${SIZES[@]}" && p99_check leakwatch+fwd
  fi
  if [ "$ONLY" = all ]; then
    echo
    echo "Not targets, for the record:"
    for size in "${SIZES[@]}"; do
      for sys in leakwatch leakwatch+fwd; do
        has "$sys" "${SYSTEMS[@]}" || continue
        echo "- CPU at $(fmt $CPU_RATE) points/s in $size-sized requests ($(fmt "${RPS_DONE[$size,$sys]}") requests/s), $sys: ${CPU[$size,$sys]}%"
      done
    done
  fi
} | tee "$REPORT"
say "report written to $REPORT"
