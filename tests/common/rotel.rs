//! rotel (an OTLP collector, from the PyPI wheel) as the real downstream of the
//! end-to-end tests, and a parser for what it prints (its debug exporter's
//! text: resources, points, spans, log records). See `tests/e2e/README.md`
//! for rotel's flags, readiness and output format.

use std::collections::BTreeMap;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::procs::*;

// ---------------------------------------------------------------- rotel

/// rotel-agent on two free loopback ports, printing everything it receives.
pub struct Rotel {
    pub proc: Proc,
    pub grpc_port: u16,
    pub http_port: u16,
}

impl Rotel {
    /// Starts rotel and waits until both ports accept connections (~10 ms). Retries with new
    /// ports when a port was taken between choosing and binding it.
    pub fn start(env: &TestEnv) -> Rotel {
        let mut last_err = String::new();
        for _ in 0..3 {
            let (grpc_port, http_port) = (free_port(), free_port());
            let mut cmd = Command::new(&env.rotel);
            cmd.env("NO_COLOR", "1") // its own log lines are coloured even into a pipe
                .arg("start")
                .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc_port}")])
                .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http_port}")])
                .args(["--exporter", "blackhole"])
                .args([
                    "--debug-log",
                    "metrics",
                    "--debug-log",
                    "traces",
                    "--debug-log",
                    "logs",
                ])
                .args(["--debug-log-verbosity", "detailed"]);
            let mut proc = Proc::spawn("rotel", cmd);
            let ready = wait_for_port(grpc_port, &mut proc, READY_TIMEOUT)
                .and_then(|()| wait_for_port(http_port, &mut proc, READY_TIMEOUT));
            match ready {
                Ok(()) => {
                    return Rotel {
                        proc,
                        grpc_port,
                        http_port,
                    }
                }
                Err(e) if e.contains("Address already in use") => last_err = e,
                Err(e) => panic!("rotel did not start: {e}"),
            }
        }
        panic!("rotel did not start after 3 attempts: {last_err}");
    }

    /// `http://127.0.0.1:PORT`, the form tonic and the SDKs take.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Everything rotel has printed so far.
    pub fn output(&self) -> String {
        self.proc.stdout()
    }

    pub fn received(&self) -> Received {
        Received::parse(&self.output())
    }

    /// Polls rotel's output until `pred` holds; panics with the output's tail on timeout.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if pred(&received) {
                return received;
            }
            if Instant::now() > deadline || self.proc.try_status().is_some() {
                panic!(
                    "rotel never received {what} within {timeout:?} (status {:?}); got {} points, {} spans, \
                     {} logs.\n--- output tail:\n{}\n--- stderr:\n{}",
                    self.proc.try_status(),
                    received.points.len(),
                    received.spans.len(),
                    received.logs.len(),
                    tail(&self.output(), 6000),
                    self.proc.stderr()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------- rotel's output, parsed

/// An attribute value as rotel prints it: `Str(x)`, `Int(1)`, `Double(1.5)`, `Bool(true)`;
/// anything else (`Slice(..)`, `Map(..)`, `Bytes(..)`) is kept as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Other(String),
}

impl Value {
    fn parse(raw: &str) -> Value {
        let inner = |prefix: &str| raw.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
        if let Some(s) = inner("Str(") {
            return Value::Str(s.to_owned());
        }
        if let Some(n) = inner("Int(").and_then(|s| s.parse().ok()) {
            return Value::Int(n);
        }
        if let Some(x) = inner("Double(").and_then(|s| s.parse().ok()) {
            return Value::Double(x);
        }
        match inner("Bool(") {
            Some("true") => Value::Bool(true),
            Some("false") => Value::Bool(false),
            _ => Value::Other(raw.to_owned()),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(n) => Some(*n as f64),
            Value::Double(x) => Some(*x),
            _ => None,
        }
    }
}

pub type Attributes = BTreeMap<String, Value>;

/// Looks up a string attribute.
pub fn attr_str<'a>(attrs: &'a Attributes, key: &str) -> Option<&'a str> {
    attrs.get(key).and_then(Value::as_str)
}

/// One metric data point with its metric's descriptor, resource and scope.
#[derive(Debug, Clone, Default)]
pub struct Point {
    pub resource: Attributes,
    pub scope: String,
    pub metric: String,
    pub description: String,
    pub unit: String,
    /// `Gauge`, `Sum`, `Histogram`, `ExponentialHistogram` or `Summary`.
    pub data_type: String,
    pub monotonic: Option<bool>,
    /// `AGGREGATION_TEMPORALITY_CUMULATIVE` / `_DELTA`, for sums and histograms.
    pub temporality: Option<String>,
    pub attributes: Attributes,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    /// Number points (rotel prints ints and doubles alike).
    pub value: Option<f64>,
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub bounds: Vec<f64>,
    pub bucket_counts: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Span {
    pub resource: Attributes,
    pub scope: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub kind: String,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub status_code: String,
    pub status_message: String,
    pub attributes: Attributes,
    /// Names of the span's events.
    pub events: Vec<String>,
    pub links: usize,
}

#[derive(Debug, Clone, Default)]
pub struct LogRecord {
    pub resource: Attributes,
    pub scope: String,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_text: String,
    /// As printed, e.g. `SEVERITY_NUMBER_WARN(13)`.
    pub severity_number: String,
    /// The `event_name` field; empty when unset (rotel omits the line then).
    pub event_name: String,
    /// A string body decoded; any other body as printed (`Map(..)`, `Int(3)`).
    pub body: String,
    pub attributes: Attributes,
    pub trace_id: String,
    pub span_id: String,
}

/// Everything rotel printed, flattened: one item per data point, span and log record.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub points: Vec<Point>,
    pub spans: Vec<Span>,
    pub logs: Vec<LogRecord>,
}

#[derive(Clone, Copy, PartialEq)]
enum Item {
    None,
    Point,
    Span,
    Log,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    None,
    Resource,
    Scope,
    Descriptor,
    Attributes,
    EventsOrLinks,
}

impl Received {
    /// Parses `--debug-log-verbosity detailed` output (format: tests/e2e/README.md).
    pub fn parse(text: &str) -> Received {
        let mut out = Received::default();
        let mut resource = Attributes::new();
        let mut scope = String::new();
        let mut desc: BTreeMap<String, String> = BTreeMap::new();
        let mut item = Item::None;
        let mut section = Section::None;
        // A multi-line string continues into following lines; remember where it goes.
        let mut cont: Option<String> = None;

        for line in text.lines() {
            if is_tracing_line(line) {
                cont = None;
                continue;
            }
            let head = line.split_once(" #").map(|(h, _)| h);
            match head {
                Some("ResourceMetrics" | "ResourceSpans" | "ResourceLog") => {
                    resource = Attributes::new();
                    (item, section, cont) = (Item::None, Section::None, None);
                    continue;
                }
                Some("ScopeMetrics" | "ScopeSpans" | "ScopeLogs") => {
                    scope.clear();
                    (item, section, cont) = (Item::None, Section::None, None);
                    continue;
                }
                Some("Metric") => {
                    desc.clear();
                    (item, section, cont) = (Item::None, Section::None, None);
                    continue;
                }
                Some(
                    "NumberDataPoints"
                    | "HistogramDataPoints"
                    | "ExponentialHistogramDataPoints"
                    | "SummaryDataPoints",
                ) => {
                    let d = |k: &str| desc.get(k).cloned().unwrap_or_default();
                    out.points.push(Point {
                        resource: resource.clone(),
                        scope: scope.clone(),
                        metric: d("Name"),
                        description: d("Description"),
                        unit: d("Unit"),
                        data_type: d("DataType"),
                        monotonic: desc.get("IsMonotonic").map(|v| v == "true"),
                        temporality: desc.get("AggregationTemporality").cloned(),
                        ..Point::default()
                    });
                    (item, section, cont) = (Item::Point, Section::None, None);
                    continue;
                }
                Some("Span") => {
                    out.spans.push(Span {
                        resource: resource.clone(),
                        scope: scope.clone(),
                        ..Span::default()
                    });
                    (item, section, cont) = (Item::Span, Section::None, None);
                    continue;
                }
                Some("LogRecord") => {
                    out.logs.push(LogRecord {
                        resource: resource.clone(),
                        scope: scope.clone(),
                        ..LogRecord::default()
                    });
                    (item, section, cont) = (Item::Log, Section::None, None);
                    continue;
                }
                Some("SpanEvent") => {
                    section = Section::EventsOrLinks;
                    if let Some(s) = out.spans.last_mut() {
                        s.events.push(String::new());
                    }
                    continue;
                }
                Some("SpanLink") => {
                    section = Section::EventsOrLinks;
                    if let Some(s) = out.spans.last_mut() {
                        s.links += 1;
                    }
                    continue;
                }
                _ => {}
            }
            match line {
                "Resource attributes:" => {
                    section = Section::Resource;
                    continue;
                }
                "InstrumentationScope attributes:" => {
                    section = Section::Scope;
                    continue;
                }
                "Descriptor:" => {
                    section = Section::Descriptor;
                    continue;
                }
                "Data point attributes:" | "Attributes:" => {
                    section = Section::Attributes;
                    continue;
                }
                "Events:" | "Links:" => {
                    section = Section::EventsOrLinks;
                    continue;
                }
                _ => {}
            }
            if let Some(rest) = line.strip_prefix("InstrumentationScope ") {
                scope = rest.split(' ').next().unwrap_or_default().to_owned();
                continue;
            }
            if line.starts_with("          -> ") || line.trim() == "-> Attributes::" {
                continue; // span event / link attributes
            }
            if let Some(kv) = line.strip_prefix("     -> ") {
                let Some((key, val)) = kv.split_once(": ") else {
                    continue;
                };
                match section {
                    Section::Resource => {
                        resource.insert(key.to_owned(), Value::parse(val));
                        cont = Some(format!("resource:{key}"));
                    }
                    Section::Descriptor => {
                        desc.insert(key.to_owned(), val.to_owned());
                    }
                    Section::Attributes => {
                        if let Some(attrs) = current_attrs(&mut out, item) {
                            attrs.insert(key.to_owned(), Value::parse(val));
                            cont = Some(format!("attr:{key}"));
                        }
                    }
                    Section::EventsOrLinks if key == "Name" => {
                        if let Some(name) = out.spans.last_mut().and_then(|s| s.events.last_mut()) {
                            *name = val.to_owned();
                        }
                    }
                    Section::Scope | Section::EventsOrLinks | Section::None => {}
                }
                continue;
            }
            // "    Trace ID       : abc" (spans and logs) or "Key: value".
            let (key, val) = match line.split_once(':') {
                Some((k, v)) => (k.trim(), v.strip_prefix(' ').unwrap_or(v)),
                None => ("", ""),
            };
            let known = set_field(&mut out, item, key, val);
            if known {
                cont = if key == "Body" {
                    Some("body".to_owned())
                } else {
                    None
                };
                continue;
            }
            if let Some(target) = &cont {
                append_continuation(&mut out, item, &mut resource, target, line);
            }
        }
        for log in &mut out.logs {
            if let Some(s) = log
                .body
                .strip_prefix("Str(")
                .and_then(|s| s.strip_suffix(')'))
            {
                log.body = s.to_owned();
            }
        }
        out
    }

    /// Data points of `metric` whose attributes include every `(key, string value)` given.
    pub fn points_of<'a>(
        &'a self,
        metric: &'a str,
        attrs: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Point> {
        self.points.iter().filter(move |p| {
            p.metric == metric
                && attrs
                    .iter()
                    .all(|(k, v)| attr_str(&p.attributes, k) == Some(v))
        })
    }

    /// Distinct metric names seen.
    pub fn metric_names(&self) -> std::collections::BTreeSet<&str> {
        self.points.iter().map(|p| p.metric.as_str()).collect()
    }

    /// Log records whose `event_name` field is `name`.
    pub fn events_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a LogRecord> {
        self.logs.iter().filter(move |l| l.event_name == name)
    }
}

fn is_tracing_line(line: &str) -> bool {
    // "2026-11-26T07:40:21.437751Z  INFO Starting Rotel. ..."
    let b = line.as_bytes();
    b.len() > 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[..4].iter().all(u8::is_ascii_digit)
}

fn current_attrs(out: &mut Received, item: Item) -> Option<&mut Attributes> {
    match item {
        Item::Point => out.points.last_mut().map(|p| &mut p.attributes),
        Item::Span => out.spans.last_mut().map(|s| &mut s.attributes),
        Item::Log => out.logs.last_mut().map(|l| &mut l.attributes),
        Item::None => None,
    }
}

fn num(val: &str) -> Option<f64> {
    val.trim().parse().ok()
}

fn int(val: &str) -> u64 {
    val.trim().parse().unwrap_or(0)
}

/// Sets a `Key: value` field of the current item; false if the line is not one.
fn set_field(out: &mut Received, item: Item, key: &str, val: &str) -> bool {
    match item {
        Item::Point => {
            let Some(p) = out.points.last_mut() else {
                return false;
            };
            match key {
                "StartTimestamp" => p.start_time_unix_nano = int(val),
                "Timestamp" => p.time_unix_nano = int(val),
                "Value" => p.value = num(val),
                "Count" => p.count = Some(int(val)),
                "Sum" => p.sum = num(val),
                "Min" => p.min = num(val),
                "Max" => p.max = num(val),
                k if k.starts_with("ExplicitBounds #") => p.bounds.extend(num(val)),
                k if k.starts_with("Buckets #") || k.starts_with("Bucket ") => {
                    // "Buckets #3, Count: 7" splits at the first ':' → key "Buckets #3, Count".
                    p.bucket_counts.push(int(val));
                }
                _ => return false,
            }
        }
        Item::Span => {
            let Some(s) = out.spans.last_mut() else {
                return false;
            };
            match key {
                "Trace ID" => s.trace_id = val.to_owned(),
                "Parent ID" => s.parent_span_id = val.to_owned(),
                "ID" => s.span_id = val.to_owned(),
                "Name" => s.name = val.to_owned(),
                "Kind" => s.kind = val.to_owned(),
                "Start time" => s.start_time_unix_nano = int(val),
                "End time" => s.end_time_unix_nano = int(val),
                "Status code" => s.status_code = val.to_owned(),
                "Status message" => s.status_message = val.to_owned(),
                _ => return false,
            }
        }
        Item::Log => {
            let Some(l) = out.logs.last_mut() else {
                return false;
            };
            match key {
                "ObservedTimestamp" => l.observed_time_unix_nano = int(val),
                "Timestamp" => l.time_unix_nano = int(val),
                "SeverityText" => l.severity_text = val.to_owned(),
                "SeverityNumber" => l.severity_number = val.to_owned(),
                "EventName" => l.event_name = val.to_owned(),
                "Body" => l.body = val.to_owned(),
                "Trace ID" => l.trace_id = val.to_owned(),
                "Span ID" => l.span_id = val.to_owned(),
                "Flags" => {}
                _ => return false,
            }
        }
        Item::None => return false,
    }
    true
}

/// Appends a line of a string value that contained a newline.
fn append_continuation(
    out: &mut Received,
    item: Item,
    resource: &mut Attributes,
    target: &str,
    line: &str,
) {
    let extend = |v: &mut Value| {
        let text = match &*v {
            Value::Str(s) | Value::Other(s) => format!("{s}\n{line}"),
            other => format!("{other:?}\n{line}"),
        };
        // "Str(a" + "b)" → Str("a\nb") once the closing parenthesis arrives.
        *v = match text.strip_prefix("Str(").and_then(|t| t.strip_suffix(')')) {
            Some(s) => Value::Str(s.to_owned()),
            None => Value::Other(text),
        };
    };
    if target == "body" {
        if let (Item::Log, Some(l)) = (item, out.logs.last_mut()) {
            l.body = format!("{}\n{line}", l.body);
        }
    } else if let Some(key) = target.strip_prefix("resource:") {
        if let Some(v) = resource.get_mut(key) {
            extend(v);
        }
    } else if let Some(key) = target.strip_prefix("attr:") {
        if let Some(v) = current_attrs(out, item).and_then(|a| a.get_mut(key)) {
            extend(v);
        }
    }
}
