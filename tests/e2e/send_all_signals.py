#!/usr/bin/env python3
"""Sends metrics, spans and log records with the OpenTelemetry Python SDK, then prints what it sent.

Used by leakwatch's end-to-end tests as a real OTLP client. Exports go through the SDK's own
OTLP exporters (gRPC or HTTP/protobuf) to --endpoint; each exporter is wrapped so the JSON
summary on stdout lists exactly what was handed to the wire and whether each export call
succeeded. Exit code 0 when every export succeeded, 1 otherwise (the summary is printed
either way), 2 on bad arguments (argparse).

    send_all_signals.py --endpoint http://127.0.0.1:4317 --protocol grpc \
        --series 3 --spans 5 --logs 4 [--rounds 1 --round-interval-ms 0] [--run-id ID]

Metrics: four instruments, each with --series attribute sets (`series.index` = 0..N-1):
  <prefix>.gauge        synchronous Gauge, unit By; value = 1_000_000 * (i + 1) + round * --gauge-slope
  <prefix>.counter      Counter, unit {request}; adds i + 1 per round (cumulative: (i + 1) * (round + 1))
  <prefix>.histogram    Histogram, unit s; records 0.01 * (i + 1) once per round
  <prefix>.updown       UpDownCounter, unit {item}; adds i - N // 2 per round
With --rounds R the values are recorded R times, one collection+export per round,
--round-interval-ms apart (a steadily growing gauge when --gauge-slope > 0).

Spans: --spans M spans in one trace, named <prefix>-span-<j>; span 0 is the root, the others
are its children. Logs: --logs K records, body "<prefix>-log-<k>", severity INFO, with
attributes test.run_id and log.index, and event_name "<prefix>.event" on odd k.
Every resource carries service.name (--service-name) and test.run_id (--run-id or a fresh uuid).

Note: the SDK's PeriodicExportingMetricReader exports once more on shutdown (cumulative
temporality re-sends the last values); the summary's metrics.exports lists that export too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Sequence

from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableCounter, UpDownCounter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry import trace


class RecordingMetricExporter(MetricExporter):
    """Delegates to the OTLP exporter and records every export call's content and result."""

    def __init__(self, inner: MetricExporter):
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.exports: list[dict] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        points: dict[str, list] = {}
        for rm in metrics_data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for dp in metric.data.data_points:
                        attrs = dict(dp.attributes or {})
                        if hasattr(dp, "value"):
                            value = dp.value
                        else:  # histogram
                            value = {"count": dp.count, "sum": dp.sum, "min": dp.min, "max": dp.max}
                        points.setdefault(metric.name, []).append({"attributes": attrs, "value": value})
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if points:
            self.exports.append({"result": result.name, "points": points})
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class RecordingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.spans: list[dict] = []
        self.results: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result.name)
        for s in spans:
            ctx = s.get_span_context()
            self.spans.append(
                {
                    "name": s.name,
                    "trace_id": f"{ctx.trace_id:032x}",
                    "span_id": f"{ctx.span_id:016x}",
                    "parent_span_id": f"{s.parent.span_id:016x}" if s.parent else "",
                    "result": result.name,
                }
            )
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class RecordingLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter):
        self.inner = inner
        self.records: list[dict] = []
        self.results: list[str] = []

    def export(self, batch):
        result = self.inner.export(batch)
        self.results.append(result.name)
        for item in batch:
            record = getattr(item, "log_record", item)
            self.records.append(
                {
                    "body": record.body,
                    "event_name": getattr(record, "event_name", None),
                    "severity_text": record.severity_text,
                    "attributes": dict(record.attributes or {}),
                    "result": result.name,
                }
            )
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_exporters(protocol: str, endpoint: str, timeout_s: float, temporality: str):
    preferred = None
    if temporality == "delta":
        preferred = {
            Counter: AggregationTemporality.DELTA,
            UpDownCounter: AggregationTemporality.CUMULATIVE,
            Histogram: AggregationTemporality.DELTA,
            ObservableCounter: AggregationTemporality.DELTA,
        }
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        kw = {"endpoint": endpoint, "insecure": endpoint.startswith("http://"), "timeout": timeout_s}
        return (
            OTLPMetricExporter(preferred_temporality=preferred, **kw),
            OTLPSpanExporter(**kw),
            OTLPLogExporter(**kw),
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/")
    return (
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=timeout_s, preferred_temporality=preferred),
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=timeout_s),
        OTLPLogExporter(endpoint=f"{base}/v1/logs", timeout=timeout_s),
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:4317 (grpc) or http://127.0.0.1:4318 (http)")
    p.add_argument("--protocol", choices=["grpc", "http", "http/protobuf"], default="grpc")
    p.add_argument("--series", type=int, default=3, help="attribute sets per metric instrument")
    p.add_argument("--spans", type=int, default=3)
    p.add_argument("--logs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="record+export rounds for metrics")
    p.add_argument("--round-interval-ms", type=int, default=0)
    p.add_argument("--gauge-slope", type=float, default=0.0, help="gauge increase per round")
    p.add_argument("--temporality", choices=["cumulative", "delta"], default="cumulative")
    p.add_argument("--prefix", default="e2e", help="prefix of metric, span and log names")
    p.add_argument("--service-name", default="leakwatch-e2e-sender")
    p.add_argument("--run-id", default=None, help="tag on every resource and log record (default: uuid4)")
    p.add_argument("--timeout-s", type=float, default=10.0, help="per-export timeout")
    args = p.parse_args(argv)
    for name in ("series", "spans", "logs", "rounds", "round_interval_ms"):
        if getattr(args, name) < 0 or (name == "rounds" and args.rounds < 1):
            p.error(f"--{name.replace('_', '-')} out of range")
    if args.rounds * max(args.round_interval_ms, 0) > 600_000:
        p.error("--rounds * --round-interval-ms must stay under 10 minutes")
    host = args.endpoint.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if host not in ("127.0.0.1", "localhost", "[::1]") and not host.startswith("127."):
        p.error(f"only loopback endpoints are allowed, got {host}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    protocol = "grpc" if args.protocol == "grpc" else "http/protobuf"
    run_id = args.run_id or str(uuid.uuid4())
    resource = Resource.create({"service.name": args.service_name, "test.run_id": run_id})
    metric_exp, span_exp, log_exp = make_exporters(protocol, args.endpoint, args.timeout_s, args.temporality)
    metric_rec = RecordingMetricExporter(metric_exp)
    span_rec = RecordingSpanExporter(span_exp)
    log_rec = RecordingLogExporter(log_exp)

    # A long interval: exports happen only when we force them, one per round.
    reader = PeriodicExportingMetricReader(metric_rec, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_rec))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_rec))

    meter = meter_provider.get_meter("leakwatch.e2e", "0.1.0")
    n = args.series
    metric_names = [f"{args.prefix}.gauge", f"{args.prefix}.counter", f"{args.prefix}.histogram", f"{args.prefix}.updown"]
    gauge = meter.create_gauge(metric_names[0], unit="By", description="e2e gauge")
    counter = meter.create_counter(metric_names[1], unit="{request}", description="e2e counter")
    histogram = meter.create_histogram(metric_names[2], unit="s", description="e2e histogram")
    updown = meter.create_up_down_counter(metric_names[3], unit="{item}", description="e2e up-down counter")

    for rnd in range(args.rounds):
        if rnd and args.round_interval_ms:
            time.sleep(args.round_interval_ms / 1000)
        for i in range(n):
            attrs = {"series.index": i}
            gauge.set(1_000_000 * (i + 1) + rnd * args.gauge_slope, attrs)
            counter.add(i + 1, attrs)
            histogram.record(0.01 * (i + 1), attrs)
            updown.add(i - n // 2, attrs)
        meter_provider.force_flush()

    tracer = tracer_provider.get_tracer("leakwatch.e2e", "0.1.0")
    span_names = [f"{args.prefix}-span-{j}" for j in range(args.spans)]
    if span_names:
        with tracer.start_as_current_span(span_names[0], attributes={"test.run_id": run_id, "span.index": 0}):
            for j, name in enumerate(span_names[1:], start=1):
                with tracer.start_as_current_span(name, attributes={"span.index": j}):
                    pass

    otel_logger = logger_provider.get_logger("leakwatch.e2e", "0.1.0")
    log_bodies = [f"{args.prefix}-log-{k}" for k in range(args.logs)]
    for k, body in enumerate(log_bodies):
        otel_logger.emit(
            timestamp=time.time_ns(),
            body=body,
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            attributes={"test.run_id": run_id, "log.index": k},
            event_name=f"{args.prefix}.event" if k % 2 else None,
        )

    tracer_provider.force_flush()
    logger_provider.force_flush()
    meter_provider.shutdown()
    tracer_provider.shutdown()
    logger_provider.shutdown()

    results = [e["result"] for e in metric_rec.exports] + span_rec.results + log_rec.results
    ok = all(r == "SUCCESS" for r in results)
    summary = {
        "ok": ok,
        "protocol": protocol,
        "endpoint": args.endpoint,
        "run_id": run_id,
        "service_name": args.service_name,
        "metrics": {
            "names": metric_names,
            "series": n,
            "rounds": args.rounds,
            "points_per_export": 4 * n,
            "exports": metric_rec.exports,
        },
        "spans": {"names": span_names, "exported": span_rec.spans, "results": span_rec.results},
        "logs": {"bodies": log_bodies, "exported": log_rec.records, "results": log_rec.results},
    }
    json.dump(summary, sys.stdout, default=str)
    sys.stdout.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
