"""A small HTTP service instrumented with the OpenTelemetry Python SDK, with a switchable leak.

With LEAK=1 every request's rendered document is kept in a module-level dict that is never
evicted; without it the document is built, hashed and dropped. The process serves HTTP on
127.0.0.1, drives its own steady load (LOAD_RPS for DURATION_S), exports metrics, spans and
log records over OTLP (gRPC or HTTP), prints one JSON line of memory stats every
STATS_INTERVAL_MS, and exits by itself after DURATION_S (or on SIGINT/SIGTERM), flushing
everything first. See README.md for the knobs and the metric list.
"""

from __future__ import annotations

import gc
import hashlib
import http.client
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterable

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

MAX_DURATION_S = 3600
MAX_RPS = 1000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        sys.exit(f"{name} must be a number, got {raw!r}")
    if value < 0:
        sys.exit(f"{name} must be non-negative, got {raw!r}")
    return value


LEAK = os.environ.get("LEAK", "0") in ("1", "true")
PAYLOAD_BYTES = env_int("PAYLOAD_BYTES", 32 * 1024)
PORT = env_int("PORT", 0)
LOAD_RPS = env_int("LOAD_RPS", 20)
DURATION_S = env_int("DURATION_S", 300)
STATS_MS = env_int("STATS_INTERVAL_MS", 5000)
USE_TRACEMALLOC = os.environ.get("TRACEMALLOC", "1") not in ("0", "false")

# The leak: module-level state that outlives the request.
_render_cache: dict[int, dict] = {}
_request_count = 0
_count_lock = threading.Lock()

log = logging.getLogger("leakwatch.example.python")


# ---------------------------------------------------------------- telemetry setup


def _exporters():
    """Returns (metric, span, log) exporters for OTEL_EXPORTER_OTLP_PROTOCOL."""
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # 127.0.0.1 rather than the SDK's "localhost", which may resolve to ::1 first.
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        kw = {"endpoint": base, "insecure": base.startswith("http://")}
        return protocol, base, OTLPMetricExporter(**kw), OTLPSpanExporter(**kw), OTLPLogExporter(**kw)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318").rstrip("/")
        return (
            protocol,
            base,
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
            OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
            OTLPLogExporter(endpoint=f"{base}/v1/logs"),
        )
    sys.exit(f"OTEL_EXPORTER_OTLP_PROTOCOL must be grpc or http/protobuf, got {protocol!r}")


def _statm() -> tuple[int, int]:
    """(rss, vms) in bytes from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        size, resident = f.read().split()[:2]
    return int(resident) * PAGE_SIZE, int(size) * PAGE_SIZE


def observe_runtime_memory(_: CallbackOptions) -> Iterable[Observation]:
    rss, vms = _statm()
    yield Observation(rss, {"memory.type": "rss"})
    yield Observation(vms, {"memory.type": "vms"})


def observe_rss(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(_statm()[0])


def observe_tracemalloc(_: CallbackOptions) -> Iterable[Observation]:
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        yield Observation(current, {"memory.type": "current"})
        yield Observation(peak, {"memory.type": "peak"})


def observe_gc_count(_: CallbackOptions) -> Iterable[Observation]:
    for generation, stats in enumerate(gc.get_stats()):
        yield Observation(stats["collections"], {"generation": str(generation)})


def observe_live_objects(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(len(gc.get_objects()))


def start_telemetry():
    interval_ms = env_int("OTEL_METRIC_EXPORT_INTERVAL", 5000)
    protocol, endpoint, metric_exporter, span_exporter, log_exporter = _exporters()
    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME", "leakwatch-example-python"),
            "service.version": "0.1.0",
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
            "process.pid": os.getpid(),
            "deployment.environment.name": "test",
            "leakwatch.example.leak": LEAK,
        }
    )
    reader = PeriodicExportingMetricReader(
        metric_exporter,
        export_interval_millis=interval_ms,
        export_timeout_millis=min(30_000, interval_ms),
    )
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(
                instrument_name="http.server.request.duration",
                aggregation=ExplicitBucketHistogramAggregation(HTTP_DURATION_BUCKETS),
            )
        ],
    )
    metrics.set_meter_provider(meter_provider)
    meter = meter_provider.get_meter("leakwatch-example-python", "0.1.0")

    # Same instrument kinds as opentelemetry-instrumentation-system-metrics: memory as
    # (non-monotonic) observable up-down counters, GC collections as an observable counter.
    meter.create_observable_up_down_counter(
        "process.runtime.cpython.memory",
        callbacks=[observe_runtime_memory],
        unit="By",
        description="Runtime cpython memory (rss, vms) from /proc/self/statm.",
    )
    meter.create_observable_up_down_counter(
        "process.memory.usage",
        callbacks=[observe_rss],
        unit="By",
        description="The amount of physical memory in use.",
    )
    meter.create_observable_gauge(
        "process.runtime.python.memory",
        callbacks=[observe_tracemalloc],
        unit="By",
        description="Memory traced by tracemalloc: current and peak.",
    )
    meter.create_observable_counter(
        "process.runtime.cpython.gc_count",
        callbacks=[observe_gc_count],
        unit="{collection}",
        description="Number of collections per GC generation since interpreter start.",
    )
    meter.create_observable_gauge(
        "process.runtime.cpython.live_objects",
        callbacks=[observe_live_objects],
        unit="{object}",
        description="Objects tracked by the cyclic garbage collector (len(gc.get_objects())).",
    )
    request_duration = meter.create_histogram(
        "http.server.request.duration", unit="s", description="Duration of HTTP server requests."
    )

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=interval_ms))
    trace.set_tracer_provider(tracer_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(log_exporter, schedule_delay_millis=interval_ms)
    )
    set_logger_provider(logger_provider)
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    return {
        "protocol": protocol,
        "endpoint": endpoint,
        "interval_ms": interval_ms,
        "providers": (meter_provider, tracer_provider, logger_provider),
        "request_duration": request_duration,
        "tracer": tracer_provider.get_tracer("leakwatch-example-python", "0.1.0"),
    }


# ---------------------------------------------------------------- the service


def render_document(request_id: int) -> dict:
    """About PAYLOAD_BYTES of heap: a str of hex from random bytes, so nothing is shared."""
    body = os.urandom(max(1, PAYLOAD_BYTES // 2)).hex()
    return {"id": request_id, "rendered_at": time.time(), "body": body, "tags": ["render", f"id-{request_id}"]}


def make_handler(tel):
    tracer = tel["tracer"]
    request_duration = tel["request_duration"]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: one line per request is too much
            pass

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            global _request_count
            start = time.perf_counter()
            path = self.path.split("?", 1)[0]
            route = None
            if path == "/api/render":
                route = "/api/render"
                with tracer.start_as_current_span("GET /api/render", kind=SpanKind.SERVER) as span:
                    with _count_lock:
                        _request_count += 1
                        request_id = _request_count
                    doc = render_document(request_id)
                    digest = hashlib.sha1(doc["body"].encode()).hexdigest()
                    if LEAK:
                        _render_cache[request_id] = doc
                    span.set_attribute("http.request.method", "GET")
                    span.set_attribute("http.route", route)
                    span.set_attribute("app.render.bytes", len(doc["body"]))
                    out = json.dumps({"id": request_id, "bytes": len(doc["body"]), "sha1": digest}).encode()
                    self._reply(200, out, "application/json")
                    span.set_attribute("http.response.status_code", 200)
                if request_id % 100 == 0:
                    log.info(
                        "Served %d render requests.",
                        request_id,
                        extra={"app.requests": request_id, "app.cache.entries": len(_render_cache)},
                    )
            elif path == "/healthz":
                route = "/healthz"
                self._reply(200, b"ok\n", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")
            attrs = {"http.request.method": "GET", "http.response.status_code": 200 if route else 404, "url.scheme": "http"}
            if route:
                attrs["http.route"] = route
            request_duration.record(time.perf_counter() - start, attrs)

    return Handler


def run_load(port: int, rps: int, duration_s: int, stop: threading.Event, stats: dict) -> None:
    """Steady-rate GETs against our own loopback port, on a fixed schedule, bounded in time and count."""
    max_requests = rps * duration_s
    period = 1.0 / rps
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    start = time.monotonic()
    while not stop.is_set() and stats["sent"] < max_requests:
        due = start + stats["sent"] * period
        delay = due - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        stats["sent"] += 1
        try:
            conn.request("GET", "/api/render")
            resp = conn.getresponse()
            resp.read()
            stats["ok" if resp.status == 200 else "failed"] += 1
        except (OSError, http.client.HTTPException):
            stats["failed"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, "t": round(time.time(), 3), **fields}), flush=True)


def memory_stats() -> dict:
    rss, vms = _statm()
    current, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
    return {"rss": rss, "vms": vms, "tracemalloc_current": current, "tracemalloc_peak": peak, "cache_entries": len(_render_cache)}


def main() -> int:
    if not 0 < DURATION_S <= MAX_DURATION_S:
        sys.exit(f"DURATION_S must be in 1..{MAX_DURATION_S}, got {DURATION_S}")
    if LOAD_RPS > MAX_RPS:
        sys.exit(f"LOAD_RPS must be at most {MAX_RPS}, got {LOAD_RPS}")
    if USE_TRACEMALLOC:
        tracemalloc.start()
    tel = start_telemetry()

    server = ThreadingHTTPServer(("127.0.0.1", PORT), make_handler(tel))
    server.daemon_threads = True
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop.set())

    emit(
        "listening",
        port=port,
        pid=os.getpid(),
        leak=LEAK,
        payload_bytes=PAYLOAD_BYTES,
        load_rps=LOAD_RPS,
        duration_s=DURATION_S,
        otlp_protocol=tel["protocol"],
        otlp_endpoint=tel["endpoint"],
        export_interval_ms=tel["interval_ms"],
        tracemalloc=USE_TRACEMALLOC,
    )
    log.info("Service started.", extra={"app.leak": LEAK, "app.payload_bytes": PAYLOAD_BYTES})

    load_stats = {"sent": 0, "ok": 0, "failed": 0}
    if LOAD_RPS > 0:
        threading.Thread(
            target=run_load, args=(port, LOAD_RPS, DURATION_S, stop, load_stats), name="load", daemon=True
        ).start()

    deadline = time.monotonic() + DURATION_S
    next_stats = time.monotonic() + STATS_MS / 1000 if STATS_MS else float("inf")
    reason = "duration elapsed"
    while True:
        now = time.monotonic()
        if stop.is_set():
            reason = "signal"
            break
        if now >= deadline:
            break
        if now >= next_stats:
            emit("stats", requests=_request_count, **memory_stats())
            next_stats += STATS_MS / 1000
        stop.wait(min(deadline, next_stats) - now)

    stop.set()
    server.shutdown()
    server.server_close()
    log.info("Service stopping.", extra={"app.requests": _request_count, "app.cache.entries": len(_render_cache)})
    for provider in tel["providers"]:
        provider.shutdown()  # flushes: final metrics, pending spans and log records
    emit("exit", reason=reason, requests=_request_count, load=load_stats, **memory_stats())
    return 0


if __name__ == "__main__":
    sys.exit(main())
