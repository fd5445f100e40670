# detect_memory_leak.py
#
# The guide's leak-detection script ("How to Detect Memory Leak Trends in Production Using
# OpenTelemetry Runtime Metrics Over Time", section "Building a Leak Detection Script"), kept
# as printed so that `leakwatch analyze` can be compared with it on the same Prometheus
# (tests/analyze.rs, README "Try it on data already in Prometheus"). Changes, all marked
# `# leakwatch:`:
#   1. PROMETHEUS_URL comes from the environment (default as in the guide).
#   2. SEED_SELECTOR (e.g. '{job="shop/checkout",instance="pod-1"}') is appended to every metric
#      name, so that the script judges one process at a time; the guide's script reads the
#      first series of each query only, whichever process that is.
#   3. SEED_FIX_TIME=1 sends start/end as Unix times. As printed, the script sends
#      "now()-24h" and "now()", which Prometheus's API refuses (HTTP 400 bad_data); the script
#      then sees no data and reports no leak, whatever the data.
import requests
import numpy as np
import sys
import os  # leakwatch: 1-3
import time  # leakwatch: 3

PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL", "http://prometheus:9090")  # leakwatch: 1
SELECTOR = os.environ.get("SEED_SELECTOR", "")  # leakwatch: 2
FIX_TIME = os.environ.get("SEED_FIX_TIME") == "1"  # leakwatch: 3


def sel(name):  # leakwatch: 2
    return name + SELECTOR


def query_range(query, duration="24h", step="5m"):
    if FIX_TIME:  # leakwatch: 3
        now = time.time()
        seconds = {"h": 3600, "m": 60, "s": 1}[duration[-1]] * int(duration[:-1])
        start, end = str(now - seconds), str(now)
    else:
        start, end = f"now()-{duration}", "now()"
    resp = requests.get(f"{PROMETHEUS_URL}/api/v1/query_range", params={
        "query": query,
        "start": start,  # leakwatch: 3 (was f"now()-{duration}")
        "end": end,  # leakwatch: 3 (was "now()")
        "step": step,
    })
    results = resp.json().get("data", {}).get("result", [])
    if results:
        return [float(v[1]) for v in results[0]["values"]]
    return []

def detect_trend(values, label="metric"):
    """Detect if a time series has a statistically significant upward trend."""
    if len(values) < 10:
        return False, 0

    x = np.arange(len(values))
    slope, intercept = np.polyfit(x, values, 1)

    # Calculate R-squared to check if the trend is consistent
    y_pred = slope * x + intercept
    ss_res = np.sum((values - y_pred) ** 2)
    ss_tot = np.sum((values - np.mean(values)) ** 2)
    r_squared = 1 - (ss_res / ss_tot) if ss_tot > 0 else 0

    # A leak shows consistent upward trend (positive slope, high R-squared)
    is_leak = slope > 0 and r_squared > 0.7

    if is_leak:
        growth_per_hour = slope * (3600 / 300)  # convert per-sample to per-hour
        print(f"  [LEAK] {label}: slope={slope:.4f}, R2={r_squared:.3f}, growth={growth_per_hour:.1f}/hour")
    else:
        print(f"  [OK] {label}: slope={slope:.4f}, R2={r_squared:.3f}")

    return is_leak, r_squared

def main():
    print("Checking memory leak indicators over the past 24 hours...\n")

    leaks_found = []

    # Check heap memory
    heap_data = query_range(sel('process_runtime_nodejs_memory_heap_used'))
    is_leak, confidence = detect_trend(np.array(heap_data), "Heap Used")
    if is_leak:
        leaks_found.append(("Heap Memory", confidence))

    # Check RSS
    rss_data = query_range(sel('process_runtime_nodejs_memory_rss'))
    is_leak, confidence = detect_trend(np.array(rss_data), "RSS")
    if is_leak:
        leaks_found.append(("RSS", confidence))

    # Check memory per request ratio
    mem_per_req = query_range(
        sel('process_runtime_nodejs_memory_heap_used') + ' / rate(' + sel('http_requests_total') + '[5m])'
    )
    is_leak, confidence = detect_trend(np.array(mem_per_req), "Memory per Request")
    if is_leak:
        leaks_found.append(("Memory per Request", confidence))

    # Check GC frequency increase
    gc_rate = query_range('rate(' + sel('process_runtime_nodejs_gc_count_total') + '[5m])')
    is_leak, confidence = detect_trend(np.array(gc_rate), "GC Frequency")
    if is_leak:
        leaks_found.append(("GC Frequency", confidence))

    if leaks_found:
        print(f"\nPotential memory leak detected! {len(leaks_found)} indicator(s) positive.")
        for name, conf in leaks_found:
            print(f"  - {name} (confidence: {conf:.2f})")
        return 1
    else:
        print("\nNo memory leak indicators found.")
        return 0

if __name__ == "__main__":
    sys.exit(main())
