#!/usr/bin/env python3
"""Run rotel (a real OTLP collector) as a test sink, and parse what it prints.

rotel's PyPI wheel ships the collector binary `rotel/rotel-agent`; scripts/setup-test-env.sh
installs it into .test-env/venv and links it at .test-env/bin/rotel-agent. With
`--exporter blackhole --debug-log {metrics,traces,logs} --debug-log-verbosity detailed` it
accepts OTLP on gRPC and HTTP, drops the data, and prints every received payload to stdout
in the OpenTelemetry Collector debug exporter's "detailed" text format. README.md beside this
file describes that format and the other findings; `parse()` turns it into dicts.

As a module (with the venv's python):
    from rotel import Rotel, parse
    with Rotel() as r:                     # free ports, waits until both ports accept
        ...send to r.grpc_endpoint / r.http_endpoint...
        r.wait_for(lambda d: any(p["metric"] == "x" for p in d["metrics"]), timeout=10)
        data = r.parsed()                  # {"metrics": [...], "spans": [...], "logs": [...]}

As a command:
    rotel.py run [--grpc-port P] [--http-port Q]   run in the foreground, echo its output
    rotel.py parse [FILE|-]                        print rotel output from FILE as JSON
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]

DEBUG_FLAGS = [
    "--exporter", "blackhole",
    "--debug-log", "metrics",
    "--debug-log", "traces",
    "--debug-log", "logs",
    "--debug-log-verbosity", "detailed",
]


def find_rotel() -> Path:
    """$LEAKWATCH_TEST_ROTEL, else .test-env/bin/rotel-agent, else the installed rotel package."""
    env = os.environ.get("LEAKWATCH_TEST_ROTEL")
    candidates = [Path(env)] if env else []
    candidates.append(REPO / ".test-env" / "bin" / "rotel-agent")
    try:
        import rotel  # type: ignore

        candidates.append(Path(rotel.__file__).parent / "rotel-agent")
    except ImportError:
        pass
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise FileNotFoundError(
        "rotel-agent not found (looked at: %s); run scripts/setup-test-env.sh" % ", ".join(map(str, candidates))
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"rotel exited with {proc.returncode} before port {port} opened")
            if time.monotonic() > deadline:
                raise TimeoutError(f"port 127.0.0.1:{port} not accepting after {timeout}s")
            time.sleep(0.01)


class Rotel:
    """rotel-agent on two loopback ports, stdout captured by a reader thread; stopped on exit."""

    def __init__(self, grpc_port: int | None = None, http_port: int | None = None, extra_args=(), attempts: int = 3):
        self.binary = find_rotel()
        self._requested = (grpc_port, http_port)
        self.extra_args = list(extra_args)
        self.attempts = attempts
        self.proc: subprocess.Popen | None = None
        self._chunks: list[str] = []
        self._lock = threading.Lock()

    def start(self) -> "Rotel":
        last_err = ""
        for _ in range(self.attempts):
            self.grpc_port = self._requested[0] or free_port()
            self.http_port = self._requested[1] or free_port()
            args = [
                str(self.binary), "start",
                "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
                "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
                *DEBUG_FLAGS, *self.extra_args,
            ]
            env = dict(os.environ, NO_COLOR="1")  # no ANSI colour codes in its own log lines
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
            try:
                wait_port(self.grpc_port, 10, self.proc)
                wait_port(self.http_port, 10, self.proc)
                return self
            except RuntimeError:
                last_err = self.proc.stderr.read()
                if "Address already in use" not in last_err or any(self._requested):
                    break
        raise RuntimeError(f"rotel failed to start: {last_err.strip()}")

    def _read(self, stream) -> None:
        for line in stream:
            with self._lock:
                self._chunks.append(line)

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def parsed(self) -> dict:
        return parse(self.text())

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            data = self.parsed()
            if predicate(data):
                return data
            if time.monotonic() > deadline:
                raise TimeoutError("rotel output never matched; last output:\n" + self.text()[-4000:])
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # exits in a few ms
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Rotel":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- output parser

_TRACING_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\S+\s+(TRACE|DEBUG|INFO|WARN|ERROR)\b")
_ATTR = re.compile(r"^ {5}-> ([^:]+?): (.*)$")  # "     -> key: Str(v)"; keys may contain spaces
_NESTED_ATTR = re.compile(r"^ {10}-> ([^:]+?): (.*)$")
_PADDED = re.compile(r"^ {4}(\S[^:]*?)\s*: ?(.*)$")  # "    Trace ID       : abc"


def decode_value(raw: str):
    """Str(x) → 'x', Int(1) → 1, Double(1.5) → 1.5, Bool(true) → True; anything else stays raw."""
    for prefix, conv in (("Str(", str), ("Int(", int), ("Double(", float), ("Bool(", lambda s: s == "true")):
        if raw.startswith(prefix) and raw.endswith(")"):
            try:
                return conv(raw[len(prefix):-1])
            except ValueError:
                return raw
    return raw


_NUMERIC_FIELDS = {
    "value", "count", "sum", "min", "max", "zero_count", "scale", "flags",
    "start_timestamp", "timestamp", "observed_timestamp", "start_time", "end_time",
}


def _snake(key: str) -> str:
    """'StartTimestamp' → 'start_timestamp', 'Start time' → 'start_time'."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", key.strip()).lower().replace(" ", "_")


def _number(raw: str):
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


def parse(text: str) -> dict:
    """Parses rotel's detailed debug output into {"metrics": points, "spans": [...], "logs": [...]}.

    Every item carries its resource attributes and scope, so each is self-contained.
    Metric items are data points: {"metric", "type", "unit", "attributes", "value" | "count"/"sum"/...}.
    """
    out = {"metrics": [], "spans": [], "logs": []}
    resource: dict = {}
    scope = {"name": "", "version": ""}
    metric: dict = {}
    item: dict | None = None  # current point / span / log record
    sub: dict | None = None  # current span event / link
    section = None  # where "-> k: v" lines go
    cont = None  # (dict, key) a multi-line string value may continue into

    def attrs_target():
        return {
            "resource": resource,
            "scope": scope.setdefault("attributes", {}),
            "point": item.setdefault("attributes", {}) if item is not None else {},
            "item": item.setdefault("attributes", {}) if item is not None else {},
        }.get(section)

    for line in text.splitlines():
        if _TRACING_LINE.match(line):
            cont = None
            continue
        head = line.split(" #", 1)[0] if " #" in line else None
        if head in ("ResourceMetrics", "ResourceSpans", "ResourceLog"):
            resource, section, cont, item = {}, None, None, None
            continue
        if line == "Resource attributes:":
            section = "resource"
            continue
        if line.startswith(("Resource SchemaURL:", "ScopeMetrics SchemaURL:", "ScopeSpans SchemaURL:", "ScopeLogs SchemaURL:")):
            continue
        if head in ("ScopeMetrics", "ScopeSpans", "ScopeLogs"):
            scope, section, item = {"name": "", "version": ""}, None, None
            continue
        if line.startswith("InstrumentationScope attributes:"):
            section = "scope"
            continue
        if line.startswith("InstrumentationScope "):
            name, _, version = line[len("InstrumentationScope "):].partition(" ")
            scope = {"name": name, "version": version.strip()}
            continue
        if head == "Metric":
            metric, item, section = {}, None, None
            continue
        if line == "Descriptor:":
            section = "descriptor"
            continue
        if head in ("NumberDataPoints", "HistogramDataPoints", "ExponentialHistogramDataPoints", "SummaryDataPoints"):
            item = {
                "resource": resource, "scope": scope["name"], "scope_version": scope["version"],
                "metric": metric.get("Name", ""), "type": metric.get("DataType", ""),
                "unit": metric.get("Unit", ""), "description": metric.get("Description", ""),
                "monotonic": metric.get("IsMonotonic") == "true" if "IsMonotonic" in metric else None,
                "temporality": metric.get("AggregationTemporality"), "attributes": {},
            }
            out["metrics"].append(item)
            section, cont = None, None
            continue
        if line == "Data point attributes:":
            section = "point"
            continue
        if head == "Span":
            item = {"resource": resource, "scope": scope["name"], "scope_version": scope["version"],
                    "attributes": {}, "events": [], "links": []}
            out["spans"].append(item)
            section, sub, cont = None, None, None
            continue
        if head == "LogRecord":
            item = {"resource": resource, "scope": scope["name"], "scope_version": scope["version"],
                    "attributes": {}, "event_name": ""}
            out["logs"].append(item)
            section, cont = None, None
            continue
        if line == "Attributes:" and item is not None:
            section, sub = "item", None
            continue
        if line in ("Events:", "Links:"):
            section = line[:-1].lower()
            continue
        if head in ("SpanEvent", "SpanLink") and item is not None:
            sub = {"attributes": {}}
            item["events" if head == "SpanEvent" else "links"].append(sub)
            continue

        if line.strip() == "-> Attributes::":  # span event / link attributes follow, nested deeper
            continue
        m = _NESTED_ATTR.match(line)
        if m and sub is not None:
            sub["attributes"][m.group(1)] = decode_value(m.group(2))
            cont = (sub["attributes"], m.group(1))
            continue
        m = _ATTR.match(line)
        if m:
            key, val = m.group(1), m.group(2)
            if section == "descriptor":
                metric[key] = val
            elif section in ("events", "links") and sub is not None:
                if key != "Attributes:":
                    sub[_snake(key)] = val
            else:
                target = attrs_target()
                if target is not None:
                    target[key] = decode_value(val)
                    cont = (target, key)
            continue
        m = _PADDED.match(line)
        if m and item is not None:
            key = _snake(m.group(1))
            item[{"id": "span_id", "parent_id": "parent_span_id"}.get(key, key)] = m.group(2)
            cont = (item, key)
            continue
        key, sep, val = line.partition(": ")
        if not sep and line.endswith(":"):
            key, sep, val = line[:-1], ":", ""
        if sep and item is not None and re.fullmatch(r"[A-Za-z][A-Za-z ]*", key):
            k = _snake(key)
            if k in _NUMERIC_FIELDS:
                item[k] = _number(val)
                cont = None
            else:
                item[k] = decode_value(val) if k == "body" else val
                cont = (item, k)
            continue
        if line.startswith("ExplicitBounds #") and item is not None:
            item.setdefault("bounds", []).append(_number(line.split(": ", 1)[1]))
            continue
        if (line.startswith("Buckets #") or line.startswith("Bucket ")) and item is not None:
            item.setdefault("bucket_counts", []).append(_number(line.rsplit("Count: ", 1)[1]))
            continue
        if cont is not None:  # a string value with an embedded newline
            target, key = cont
            prev = target[key]
            joined = (prev if isinstance(prev, str) else str(prev)) + "\n" + line
            if joined.endswith(")") and joined.startswith("Str("):
                joined = joined[4:-1]
            target[key] = joined
    for log in out["logs"]:
        if isinstance(log.get("body"), str) and log["body"].startswith("Str(") and log["body"].endswith(")"):
            log["body"] = log["body"][4:-1]
    return out


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "parse":
        src = argv[1] if len(argv) > 1 else "-"
        text = sys.stdin.read() if src == "-" else Path(src).read_text(errors="replace")
        json.dump(parse(text), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
        return 0
    if len(argv) >= 1 and argv[0] == "run":
        ports = {"--grpc-port": None, "--http-port": None}
        for flag, val in zip(argv[1::2], argv[2::2]):
            if flag not in ports:
                print(__doc__, file=sys.stderr)
                return 64
            ports[flag] = int(val)
        r = Rotel(ports["--grpc-port"], ports["--http-port"])
        r.start()
        print(f"rotel ready: grpc={r.grpc_endpoint} http={r.http_endpoint} (Ctrl-C stops)", file=sys.stderr)
        shown = 0
        try:
            while r.proc.poll() is None:
                text = r.text()
                sys.stdout.write(text[shown:])
                sys.stdout.flush()
                shown = len(text)
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            r.stop()
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
