//! The clients of the end-to-end tests: the OpenTelemetry SDK scripts and the
//! example apps (Node.js, Python), each a real process started from
//! `.test-env/`.

use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::procs::*;

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
