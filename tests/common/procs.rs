//! The supervisor of the end-to-end tests' real processes: the installed test
//! environment, free ports, processes with captured output, and leakwatch's
//! own binary. rotel and its output parser are in [`super::rotel`], the SDK
//! scripts and example apps in [`super::apps`].
//!
//! Everything comes from `.test-env/`, made by `scripts/setup-test-env.sh`; see
//! `tests/e2e/README.md` for rotel's flags, readiness and output format. Missing pieces fail
//! the test with a message naming the fix: these tests never skip themselves.
//!
//! std only. Processes are killed (SIGKILL) and reaped when their handle drops.
#![allow(dead_code)]

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

pub(crate) fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

pub(crate) fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos << 16) ^ NEXT.fetch_add(1, Ordering::Relaxed)
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
