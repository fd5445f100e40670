//! Real external processes for end-to-end tests: rotel (an OTLP collector) as the downstream,
//! the OpenTelemetry SDK scripts and example apps as clients, and a parser for what rotel prints.
//!
//! Everything comes from `.test-env/`, made by `scripts/setup-test-env.sh`; see
//! `tests/e2e/README.md` for rotel's flags, readiness and output format. Missing pieces fail
//! the test with a message naming the fix: these tests never skip themselves.
//!
//! std only. Processes are killed (SIGKILL) and reaped when their handle drops.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a process gets to open its ports.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- the installed test environment

/// Paths of the real components the end-to-end tests run.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// `.test-env/venv/bin/python`: has the OpenTelemetry SDK and exporters.
    pub python: PathBuf,
    /// `rotel-agent`, the collector binary from the rotel wheel.
    pub rotel: PathBuf,
    /// `node` on PATH.
    pub node: PathBuf,
    pub node_example: PathBuf,
    pub python_example: PathBuf,
    pub e2e_dir: PathBuf,
}

impl TestEnv {
    /// Finds the installed pieces; panics with a clear message if any is missing.
    /// `LEAKWATCH_TEST_PYTHON` / `LEAKWATCH_TEST_ROTEL` override the default locations.
    pub fn locate() -> &'static TestEnv {
        static ENV: OnceLock<TestEnv> = OnceLock::new();
        ENV.get_or_init(|| match Self::try_locate() {
            Ok(env) => env,
            Err(missing) => panic!(
                "end-to-end test environment incomplete:\n  {}\nrun `scripts/setup-test-env.sh` \
                 (or call TestEnv::setup()) first",
                missing.join("\n  ")
            ),
        })
    }

    /// Runs `scripts/setup-test-env.sh` once per test binary (idempotent, ~0.3 s when up to
    /// date, serialised by flock), then [`TestEnv::locate`]. Panics if the script fails.
    pub fn setup() -> &'static TestEnv {
        static DONE: OnceLock<()> = OnceLock::new();
        DONE.get_or_init(|| {
            let script = repo_root().join("scripts/setup-test-env.sh");
            let out = Command::new("bash")
                .arg(&script)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        });
        Self::locate()
    }

    fn try_locate() -> Result<TestEnv, Vec<String>> {
        let root = repo_root();
        let mut missing = Vec::new();
        let python = std::env::var_os("LEAKWATCH_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".test-env/venv/bin/python"));
        if !python.is_file() {
            missing.push(format!("venv python not found at {}", python.display()));
        }
        let rotel = std::env::var_os("LEAKWATCH_TEST_ROTEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(".test-env/bin/rotel-agent"));
        if !rotel.is_file() {
            missing.push(format!("rotel-agent not found at {}", rotel.display()));
        }
        let node = which("node").unwrap_or_else(|| {
            missing.push("node not found on PATH (need Node.js >= 20.6)".to_owned());
            PathBuf::from("node")
        });
        let node_example = root.join("examples/node");
        if !node_example
            .join("node_modules/@opentelemetry/sdk-metrics")
            .is_dir()
        {
            missing.push(format!(
                "{}/node_modules missing (npm ci)",
                node_example.display()
            ));
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(TestEnv {
            python,
            rotel,
            node,
            node_example,
            python_example: root.join("examples/python"),
            e2e_dir: root.join("tests/e2e"),
        })
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

// ---------------------------------------------------------------- ports

/// A currently free loopback port. Only for external programs that cannot bind port 0 and
/// report it (rotel panics on port 0); in-process servers bind 127.0.0.1:0 directly.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls until `127.0.0.1:port` accepts a connection. Fails early if `proc` exits.
pub fn wait_for_port(port: u16, proc: &mut Proc, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = proc.try_status() {
            return Err(format!(
                "{} exited ({status}) before 127.0.0.1:{port} opened; stderr:\n{}",
                proc.name,
                proc.stderr()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{}: 127.0.0.1:{port} not accepting after {timeout:?}",
                proc.name
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------- processes

/// Text a reader thread keeps appending to.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn drain(stream: impl Read + Send + 'static) -> Captured {
        let captured = Captured::default();
        let sink = captured.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            // Read until EOF even when the test no longer looks: a full pipe would block the child.
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                sink.0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        captured
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A child process with stdout and stderr captured; SIGKILLed and reaped on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    stdout: Captured,
    stderr: Captured,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout/stderr captured.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({cmd:?}): {e}"));
        let stdout = Captured::drain(child.stdout.take().expect("piped stdout"));
        let stderr = Captured::drain(child.stderr.take().expect("piped stderr"));
        Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Polls stdout until `pred` holds; panics with both streams on timeout.
    pub fn wait_for_stdout(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.wait_for_output(what, timeout, Proc::stdout, pred)
    }

    /// Polls stderr (where leakwatch logs) until `pred` holds; panics on timeout.
    pub fn wait_for_stderr(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.wait_for_output(what, timeout, Proc::stderr, pred)
    }

    fn wait_for_output(
        &mut self,
        what: &str,
        timeout: Duration,
        read: fn(&Proc) -> String,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let out = read(self);
            if pred(&out) {
                return out;
            }
            let status = self.try_status();
            if Instant::now() > deadline || status.is_some() {
                panic!(
                    "{}: never saw {what} (status {status:?}).\n--- stdout (last 4000 chars):\n{}\n--- stderr (last 4000 chars):\n{}",
                    self.name,
                    tail(&self.stdout(), 4000),
                    tail(&self.stderr(), 4000)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself; SIGKILLs it after `timeout` and panics.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "{} did not exit within {timeout:?}; stderr:\n{}",
                    self.name,
                    tail(&self.stderr(), 4000)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (through `kill(1)`: std has no signal API) and waits up to `grace`,
    /// then SIGKILLs. Returns the exit status and whether it exited within the grace period.
    pub fn terminate(&mut self, grace: Duration) -> (ExitStatus, bool) {
        if let Some(status) = self.try_status() {
            return (status, true);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_status() {
                return (status, true);
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        (self.try_status().expect("reaped after SIGKILL"), false)
    }

    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

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

// ---------------------------------------------------------------- clients

/// Arguments of `tests/e2e/send_all_signals.py` (see its docstring).
#[derive(Debug, Clone)]
pub struct SendSignals {
    pub endpoint: String,
    /// `grpc` or `http`.
    pub protocol: &'static str,
    pub series: u32,
    pub spans: u32,
    pub logs: u32,
    pub rounds: u32,
    pub round_interval_ms: u64,
    pub gauge_slope: f64,
    pub prefix: String,
    pub run_id: String,
    pub timeout_s: f64,
}

impl SendSignals {
    pub fn new(endpoint: impl Into<String>) -> Self {
        SendSignals {
            endpoint: endpoint.into(),
            protocol: "grpc",
            series: 3,
            spans: 3,
            logs: 3,
            rounds: 1,
            round_interval_ms: 0,
            gauge_slope: 0.0,
            prefix: "e2e".to_owned(),
            run_id: format!("run-{}-{}", std::process::id(), unique()),
            timeout_s: 5.0,
        }
    }

    /// Runs the script to completion; returns (exit status, stdout = one JSON summary line).
    /// Panics if it cannot be run or takes more than two minutes.
    pub fn run(&self, env: &TestEnv) -> (ExitStatus, String) {
        let mut cmd = Command::new(&env.python);
        cmd.arg(env.e2e_dir.join("send_all_signals.py"))
            .args(["--endpoint", &self.endpoint, "--protocol", self.protocol])
            .args(["--series", &self.series.to_string()])
            .args(["--spans", &self.spans.to_string()])
            .args(["--logs", &self.logs.to_string()])
            .args(["--rounds", &self.rounds.to_string()])
            .args(["--round-interval-ms", &self.round_interval_ms.to_string()])
            .args(["--gauge-slope", &self.gauge_slope.to_string()])
            .args(["--prefix", &self.prefix, "--run-id", &self.run_id])
            .args(["--timeout-s", &self.timeout_s.to_string()]);
        let mut proc = Proc::spawn("send_all_signals.py", cmd);
        let status = proc.wait(Duration::from_secs(120));
        let stdout = proc.stdout();
        if stdout.trim().is_empty() {
            panic!(
                "send_all_signals.py printed nothing ({status}); stderr:\n{}",
                proc.stderr()
            );
        }
        (status, stdout)
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos << 16) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Which example service to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    Node,
    Python,
}

/// Settings of an example service (`examples/{node,python}`); see their READMEs.
#[derive(Debug, Clone)]
pub struct ExampleApp {
    pub example: Example,
    /// OTLP base URL: `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `grpc`, `http/protobuf` (both examples) or `http/json` (node only).
    pub protocol: &'static str,
    pub leak: bool,
    pub service_name: String,
    pub export_interval_ms: u64,
    pub load_rps: u32,
    pub payload_bytes: u64,
    pub duration_s: u64,
    pub stats_interval_ms: u64,
}

impl ExampleApp {
    pub fn new(example: Example, endpoint: impl Into<String>, leak: bool) -> Self {
        let lang = match example {
            Example::Node => "node",
            Example::Python => "python",
        };
        ExampleApp {
            example,
            endpoint: endpoint.into(),
            protocol: "grpc",
            leak,
            service_name: format!("e2e-{lang}-{}", if leak { "leak" } else { "healthy" }),
            export_interval_ms: 1000,
            load_rps: 20,
            payload_bytes: 32 * 1024,
            duration_s: 120,
            stats_interval_ms: 5000,
        }
    }

    /// Starts the service; returns once it printed its `listening` line. It drives its own
    /// load, prints one JSON `stats` line per `stats_interval_ms` (ground truth: heap, rss,
    /// requests) and exits by itself after `duration_s`, flushing its metrics.
    pub fn spawn(&self, env: &TestEnv) -> Proc {
        let mut cmd = match self.example {
            Example::Node => {
                let mut c = Command::new(&env.node);
                c.arg("server.js").current_dir(&env.node_example);
                c
            }
            Example::Python => {
                let mut c = Command::new(&env.python);
                c.arg("app.py").current_dir(&env.python_example);
                c
            }
        };
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", &self.endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", self.protocol)
            .env("OTEL_SERVICE_NAME", &self.service_name)
            .env(
                "OTEL_METRIC_EXPORT_INTERVAL",
                self.export_interval_ms.to_string(),
            )
            .env("LEAK", if self.leak { "1" } else { "0" })
            .env("LOAD_RPS", self.load_rps.to_string())
            .env("PAYLOAD_BYTES", self.payload_bytes.to_string())
            .env("DURATION_S", self.duration_s.to_string())
            .env("STATS_INTERVAL_MS", self.stats_interval_ms.to_string());
        let mut proc = Proc::spawn(&self.service_name, cmd);
        proc.wait_for_stdout("its listening line", READY_TIMEOUT, |out| {
            out.contains("\"listening\"")
        });
        proc
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

// ---------------------------------------------------------------- leakwatch itself

/// The `leakwatch` binary running as a real process on free loopback ports.
pub struct Leakwatch {
    pub proc: Proc,
    pub grpc: u16,
    pub http: u16,
    pub admin: u16,
    _config: TempFile,
}

/// A file deleted on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, text: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "leakwatch-{}-{}-{name}",
            std::process::id(),
            unique()
        ));
        std::fs::write(&path, text).expect("write temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Leakwatch {
    /// Starts leakwatch forwarding to `downstream` (an `http://` OTLP/gRPC endpoint) with
    /// `config_yaml` as its configuration file; returns once all three listeners are bound.
    /// They bind port 0 and the ports are read from leakwatch's "listening" log lines, so no
    /// other process can take a port between choosing and binding it.
    pub fn start(downstream: &str, config_yaml: &str) -> Leakwatch {
        let config = TempFile::new("config.yaml", config_yaml);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakwatch"));
        cmd.arg("--config")
            .arg(&config.0)
            .args(["--grpc-listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--downstream", downstream])
            .args(["--log-format", "json"]);
        let mut proc = Proc::spawn("leakwatch", cmd);
        let out = proc.wait_for_stderr("its three listening addresses", READY_TIMEOUT, |out| {
            listening_ports(out).is_some()
        });
        let Some((grpc, http, admin)) = listening_ports(&out) else {
            unreachable!("checked by wait_for_stdout")
        };
        Leakwatch {
            proc,
            grpc,
            http,
            admin,
            _config: config,
        }
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// GET on the admin listener; returns (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
    }
}

/// The gRPC, HTTP and admin ports leakwatch logged (JSON log lines) as listening on.
fn listening_ports(stdout: &str) -> Option<(u16, u16, u16)> {
    let port_of = |message: &str| {
        stdout.lines().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            if v.get("message")?.as_str()? != message {
                return None;
            }
            let addr: SocketAddr = v.get("addr")?.as_str()?.parse().ok()?;
            Some(addr.port())
        })
    };
    Some((
        port_of("OTLP/gRPC receiver listening.")?,
        port_of("OTLP/HTTP receiver listening.")?,
        port_of("Admin listener listening.")?,
    ))
}

/// A minimal HTTP/1.0 GET on 127.0.0.1:`port` (std only).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("write request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
