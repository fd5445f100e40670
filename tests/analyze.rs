//! `leakwatch analyze` against the real thing: Debian's `promtool` backfills a TSDB with
//! generated traces of leaking and healthy Node.js and Python processes — under the suffixed
//! names, the unsuffixed names and the guide's old names —, Debian's `prometheus` serves it on a
//! free loopback port, and the built binary must give every process its verdict and the right
//! exit code. Also: a Collector file-exporter JSON-lines file, the error exit codes, the guide's
//! own script side by side on the same Prometheus, and a small version of the 48 h fleet bench
//! (`scripts/bench-analyze.sh` runs the full one).
//!
//! The traces come from the small model below, with its own seeds (0x16_0000 + 7919·i) and
//! parameters: none of them is a scenario the detector was tuned on (`tools/src/scenario.rs`).
//!
//! Needs `prometheus` and `promtool` (`scripts/setup-test-env.sh` installs them): under
//! `CI=true` a missing one fails the test; otherwise the Prometheus tests say they skip.

mod common;

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::io::{BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::procs::{free_port, repo_root, Proc};

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------- the tools

struct Tools {
    prometheus: PathBuf,
    promtool: PathBuf,
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `prometheus` and `promtool`, or `None` (after saying so) outside CI.
fn tools(test: &str) -> Option<Tools> {
    let find = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| which(name))
    };
    match (
        find("LEAKWATCH_TEST_PROMETHEUS", "prometheus"),
        find("LEAKWATCH_TEST_PROMTOOL", "promtool"),
    ) {
        (Some(prometheus), Some(promtool)) => Some(Tools {
            prometheus,
            promtool,
        }),
        _ if in_ci() => panic!(
            "{test}: prometheus/promtool not found (CI=true: this test must run). Run \
             scripts/setup-test-env.sh (apt-get install prometheus) or set \
             LEAKWATCH_TEST_PROMETHEUS / LEAKWATCH_TEST_PROMTOOL"
        ),
        _ => {
            eprintln!(
                "SKIPPED {test}: prometheus/promtool not found; run scripts/setup-test-env.sh \
                 (apt-get install prometheus) to run it"
            );
            None
        }
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "analyze-{name}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn rfc3339(t_s: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t_s as u64)).to_string()
}

// ---------------------------------------------------------------- the trace model

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Runtime {
    Node,
    Python,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Naming {
    /// `v8js_memory_heap_used_bytes`, `cpython_gc_collections_total`, …
    Suffixed,
    /// `v8js_memory_heap_used`, `cpython_gc_collections`, … (`add_metric_suffixes: false`).
    Unsuffixed,
    /// The guide's names: `process_runtime_nodejs_memory_heap_used`, …
    Guide,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pattern {
    /// The floor that survives GC grows this fast from `onset_h` on.
    Leak { mib_per_hour: f64, onset_h: f64 },
    /// A flat floor under the GC sawtooth.
    Sawtooth,
    /// A cache filling up: the floor rises and saturates within hours, then stays.
    WarmUp,
    /// Memory follows a daily wave of load.
    DailyWave,
}

#[derive(Clone, Debug)]
struct Trace {
    job: String,
    instance: String,
    runtime: Runtime,
    naming: Naming,
    pattern: Pattern,
    seed: u64,
    /// The verdict leakwatch should give (and the test asserts).
    expect: &'static str,
}

impl Trace {
    fn new(
        job: &str,
        instance: &str,
        runtime: Runtime,
        naming: Naming,
        pattern: Pattern,
        i: u64,
        expect: &'static str,
    ) -> Trace {
        Trace {
            job: job.to_owned(),
            instance: instance.to_owned(),
            runtime,
            naming,
            pattern,
            seed: 0x16_0000 + 7919 * i,
            expect,
        }
    }

    /// `service (instance)` as leakwatch names the process.
    fn process(&self) -> String {
        let service = self.job.rsplit('/').next().unwrap_or(&self.job);
        format!("{service} ({})", self.instance)
    }

    fn selector(&self) -> String {
        format!("{{job=\"{}\",instance=\"{}\"}}", self.job, self.instance)
    }
}

/// One sampling instant of a process.
#[derive(Clone, Copy, Debug, Default)]
struct Step {
    t_s: i64,
    heap_old: f64,
    heap_new: f64,
    gc_major: f64,
    gc_minor: f64,
    rss: f64,
    requests: f64,
}

/// The process's samples every `interval_s` over `[start_s, start_s + hours]`.
fn simulate(tr: &Trace, start_s: i64, hours: f64, interval_s: i64) -> Vec<Step> {
    let mut rng = Rng(tr.seed);
    let base = (90.0 + 70.0 * rng.uniform()) * MIB;
    let amp = (24.0 + 16.0 * rng.uniform()) * MIB;
    let phase = 2.0 * PI * rng.uniform();
    let load0 = 25.0 + 30.0 * rng.uniform();
    let warm = (50.0 + 30.0 * rng.uniform()) * MIB;
    let tau_h = 1.5 + rng.uniform();
    let mut fill = amp * rng.uniform();
    let mut s = Step::default();
    let mut rss_smooth = base + amp + 60.0 * MIB;
    let n = (hours * 3600.0 / interval_s as f64) as i64;
    let dt = interval_s as f64;
    let mut out = Vec::with_capacity(n as usize + 1);
    for k in 0..=n {
        let t_h = k as f64 * dt / 3600.0;
        let wave = (2.0 * PI * t_h / 24.0 + phase).sin();
        let load = match tr.pattern {
            Pattern::DailyWave => load0 * (1.0 + 0.6 * wave),
            _ => load0,
        } * (1.0 + 0.08 * rng.normal());
        let load = load.max(0.5);
        let floor = base
            + match tr.pattern {
                Pattern::Leak {
                    mib_per_hour,
                    onset_h,
                } => mib_per_hour * MIB * (t_h - onset_h).max(0.0),
                Pattern::Sawtooth => 0.0,
                Pattern::WarmUp => warm * (1.0 - (-t_h / tau_h).exp()),
                Pattern::DailyWave => 18.0 * MIB * wave,
            };
        // Objects promoted to the old space pile up until a major GC takes them.
        fill += load * dt * (14.0 + 4.0 * rng.uniform()) * 1024.0;
        if fill > amp {
            fill = 0.6 * MIB * rng.uniform();
            s.gc_major += 1.0;
        }
        s.gc_minor += (load * dt / 35.0).round();
        s.requests += (load * dt).round();
        s.t_s = start_s + k * interval_s;
        match tr.runtime {
            Runtime::Node => {
                s.heap_old = floor + fill + 0.3 * MIB * rng.normal();
                s.heap_new = (1.0 + 15.0 * rng.uniform()) * MIB;
                // Resident memory follows the heap's peaks, smoothed, plus native memory.
                let target = floor + amp + 55.0 * MIB;
                rss_smooth += (target - rss_smooth) * 0.05;
                s.rss = rss_smooth + 1.5 * MIB * rng.normal();
            }
            Runtime::Python => {
                s.heap_old = 0.0;
                s.heap_new = 0.0;
                s.rss = floor + 0.8 * MIB * rng.normal() + 0.4 * fill;
            }
        }
        out.push(s);
    }
    out
}

/// A step's samples under the trace's naming: (family, labels without job/instance, value).
fn samples(tr: &Trace, s: &Step) -> Vec<(&'static str, String, f64)> {
    let route = r#"http_request_method="GET",http_route="/api/items/{id}""#.to_owned();
    match (tr.runtime, tr.naming) {
        (Runtime::Node, Naming::Guide) => vec![
            (
                "process_runtime_nodejs_memory_heap_used",
                String::new(),
                s.heap_old + s.heap_new,
            ),
            ("process_runtime_nodejs_memory_rss", String::new(), s.rss),
            (
                "process_runtime_nodejs_gc_count_total",
                String::new(),
                s.gc_major + s.gc_minor,
            ),
            ("http_requests_total", String::new(), s.requests),
        ],
        (Runtime::Node, naming) => {
            let sfx = naming == Naming::Suffixed;
            let heap = if sfx {
                "v8js_memory_heap_used_bytes"
            } else {
                "v8js_memory_heap_used"
            };
            let gc = if sfx {
                "v8js_gc_duration_seconds_count"
            } else {
                "v8js_gc_duration_count"
            };
            let rss = if sfx {
                "process_memory_usage_bytes"
            } else {
                "process_memory_usage"
            };
            let http = if sfx {
                "http_server_request_duration_seconds_count"
            } else {
                "http_server_request_duration_count"
            };
            vec![
                (
                    heap,
                    r#"v8js_heap_space_name="old_space""#.into(),
                    s.heap_old,
                ),
                (
                    heap,
                    r#"v8js_heap_space_name="new_space""#.into(),
                    s.heap_new,
                ),
                (gc, r#"v8js_gc_type="major""#.into(), s.gc_major),
                (gc, r#"v8js_gc_type="minor""#.into(), s.gc_minor),
                (rss, String::new(), s.rss),
                (http, route, s.requests),
            ]
        }
        (Runtime::Python, naming) => {
            let sfx = naming == Naming::Suffixed;
            let mem = if sfx {
                "process_runtime_cpython_memory_bytes"
            } else {
                "process_runtime_cpython_memory"
            };
            let gc = if sfx {
                "cpython_gc_collections_total"
            } else {
                "cpython_gc_collections"
            };
            let http = if sfx {
                "http_server_request_duration_seconds_count"
            } else {
                "http_server_request_duration_count"
            };
            vec![
                (mem, r#"memory_type="rss""#.into(), s.rss),
                (
                    mem,
                    r#"memory_type="vms""#.into(),
                    3.0 * s.rss + 400.0 * MIB,
                ),
                (gc, r#"cpython_gc_generation="0""#.into(), s.gc_minor),
                (http, route, s.requests),
            ]
        }
    }
}

/// Writes the traces as OpenMetrics text with timestamps: one family at a time (OpenMetrics
/// forbids interleaving them), each process simulated again per family (it is deterministic,
/// so memory holds one process's history at a time). Returns the number of samples.
fn write_openmetrics(
    path: &Path,
    traces: &[Trace],
    start_s: i64,
    hours: f64,
    interval_s: i64,
) -> u64 {
    let file = std::fs::File::create(path).expect("create openmetrics file");
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let probe = Step::default();
    let mut families: Vec<&'static str> = traces
        .iter()
        .flat_map(|t| samples(t, &probe).into_iter().map(|(f, _, _)| f))
        .collect();
    families.sort_unstable();
    families.dedup();
    let mut count = 0;
    for family in families {
        writeln!(w, "# TYPE {family} unknown").expect("write");
        for tr in traces {
            if !samples(tr, &probe).iter().any(|(f, _, _)| *f == family) {
                continue;
            }
            let mut by_series: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for s in simulate(tr, start_s, hours, interval_s) {
                for (f, labels, v) in samples(tr, &s) {
                    if f != family {
                        continue;
                    }
                    let mut all = format!("job=\"{}\",instance=\"{}\"", tr.job, tr.instance);
                    if !labels.is_empty() {
                        all.push(',');
                        all.push_str(&labels);
                    }
                    let lines = by_series.entry(all.clone()).or_default();
                    lines.push(format!("{family}{{{all}}} {v:.0} {}", s.t_s));
                }
            }
            for lines in by_series.values() {
                for l in lines {
                    writeln!(w, "{l}").expect("write");
                    count += 1;
                }
            }
        }
    }
    // The other resource attributes, as Prometheus's OTLP receiver keeps them.
    writeln!(w, "# TYPE target_info unknown").expect("write");
    for tr in traces {
        let language = match tr.runtime {
            Runtime::Node => "nodejs",
            Runtime::Python => "python",
        };
        let end = start_s + (hours * 3600.0) as i64;
        let mut t = start_s;
        while t <= end {
            writeln!(
                w,
                "target_info{{job=\"{}\",instance=\"{}\",telemetry_sdk_language=\"{language}\"}} 1 {t}",
                tr.job, tr.instance
            )
            .expect("write");
            t += 600;
        }
    }
    writeln!(w, "# EOF").expect("write");
    w.flush().expect("flush");
    count
}

// ---------------------------------------------------------------- Prometheus

/// A Prometheus on a backfilled TSDB, on a free loopback port; killed on drop.
struct Prometheus {
    proc: Proc,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Backfills `traces` with promtool, then starts Prometheus on the blocks.
    fn start(
        tools: &Tools,
        name: &str,
        traces: &[Trace],
        start_s: i64,
        hours: f64,
        interval_s: i64,
    ) -> Prometheus {
        let dir = temp_dir(name);
        let om = dir.join("traces.om");
        let t0 = Instant::now();
        let n = write_openmetrics(&om, traces, start_s, hours, interval_s);
        let data = dir.join("data");
        let out = Command::new(&tools.promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&om)
            .arg(&data)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool tsdb create-blocks-from openmetrics failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&om);
        eprintln!(
            "{name}: backfilled {n} samples of {} processes in {:.1} s",
            traces.len(),
            t0.elapsed().as_secs_f64()
        );
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            "global:\n  scrape_interval: 1h\nscrape_configs: []\n",
        )
        .expect("config");
        let port = free_port();
        let mut cmd = Command::new(&tools.prometheus);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=3650d")
            .current_dir(&dir);
        let mut proc = Proc::spawn("prometheus", cmd);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if http_get(port, "/-/ready").is_some_and(|(status, _)| status == 200) {
                break;
            }
            if proc.try_status().is_some() || Instant::now() > deadline {
                panic!(
                    "prometheus did not become ready on 127.0.0.1:{port}:\n{}",
                    proc.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus { proc, port, dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A bare HTTP/1.0 GET on loopback: (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

// ---------------------------------------------------------------- running the binary

fn leakwatch(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leakwatch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEAKWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).output().expect("run leakwatch")
}

fn report_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): status {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn verdicts(report: &serde_json::Value) -> BTreeMap<String, String> {
    report["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| {
            (
                p["process"].as_str().unwrap_or_default().to_owned(),
                p["verdict"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- the suite of processes

fn suite() -> Vec<Trace> {
    use Naming::*;
    use Pattern::*;
    use Runtime::*;
    let leak = |mib_per_hour| Leak {
        mib_per_hour,
        onset_h: 0.0,
    };
    vec![
        Trace::new(
            "shop/checkout",
            "node-1",
            Node,
            Suffixed,
            leak(5.0),
            1,
            "confirmed",
        ),
        Trace::new("shop/checkout", "node-2", Node, Suffixed, Sawtooth, 2, "ok"),
        Trace::new(
            "shop/cart",
            "node-3",
            Node,
            Unsuffixed,
            leak(2.5),
            3,
            "confirmed",
        ),
        Trace::new("shop/cart", "node-4", Node, Unsuffixed, WarmUp, 4, "ok"),
        Trace::new(
            "legacy-api",
            "node-5",
            Node,
            Guide,
            leak(3.5),
            5,
            "confirmed",
        ),
        Trace::new("legacy-api", "node-6", Node, Guide, Sawtooth, 6, "ok"),
        Trace::new("legacy-api", "node-7", Node, Guide, DailyWave, 7, "ok"),
        Trace::new(
            "pay/ledger",
            "py-1",
            Python,
            Suffixed,
            leak(4.0),
            8,
            "confirmed",
        ),
        Trace::new("pay/ledger", "py-2", Python, Suffixed, DailyWave, 9, "ok"),
        Trace::new(
            "search",
            "py-3",
            Python,
            Unsuffixed,
            leak(2.0),
            10,
            "confirmed",
        ),
        Trace::new("search", "py-4", Python, Unsuffixed, WarmUp, 11, "ok"),
        // A fast leak that began 10 h before the end, while traffic falls (floor 110 → 390 MiB,
        // RSS 200 → 495 MiB). The long window's load regression alone vetoed it (load and time
        // are collinear over falling traffic); the fast window, which asks only whether the
        // floor grows faster than the load, confirms it.
        Trace::new(
            "shop/checkout",
            "node-8",
            Node,
            Suffixed,
            Leak {
                mib_per_hour: 30.0,
                onset_h: 38.0,
            },
            12,
            "confirmed",
        ),
    ]
}

/// 48 h of the suite at 30 s, ending now (so the guide's script, which reads "the past 24
/// hours", sees it too).
const HOURS: f64 = 48.0;
const INTERVAL_S: i64 = 30;

#[test]
fn every_process_gets_its_verdict_from_prometheus() {
    let Some(tools) = tools("every_process_gets_its_verdict_from_prometheus") else {
        return;
    };
    let traces = suite();
    let end_s = now_s() / INTERVAL_S * INTERVAL_S;
    let start_s = end_s - (HOURS * 3600.0) as i64;
    let prom = Prometheus::start(&tools, "suite", &traces, start_s, HOURS, INTERVAL_S);
    let url = prom.url();
    let (start, end) = (rfc3339(start_s), rfc3339(end_s));
    let window = [
        "--start",
        start.as_str(),
        "--end",
        end.as_str(),
        "--step",
        "30s",
    ];

    // The JSON report: every process, its verdict, the exit code.
    let mut args = vec!["analyze", "--prometheus", url.as_str(), "--format", "json"];
    args.extend(window);
    let t0 = Instant::now();
    let out = leakwatch(&args);
    let elapsed = t0.elapsed();
    let report = report_of(&out);
    let got = verdicts(&report);
    let expected: BTreeMap<String, String> = traces
        .iter()
        .map(|t| (t.process(), t.expect.to_owned()))
        .collect();
    let mut side_by_side = String::new();
    for t in &traces {
        side_by_side.push_str(&format!(
            "{:<22} {:<10} {:<10} {:<10} expected {:<9} leakwatch {}\n",
            t.process(),
            format!("{:?}", t.runtime),
            format!("{:?}", t.naming),
            format!("{:?}", t.pattern)
                .split_whitespace()
                .next()
                .unwrap_or(""),
            t.expect,
            got.get(&t.process())
                .map(String::as_str)
                .unwrap_or("MISSING"),
        ));
    }
    eprintln!(
        "leakwatch analyze over {} processes, {HOURS} h at {INTERVAL_S} s: {:.2} s\n{side_by_side}",
        traces.len(),
        elapsed.as_secs_f64()
    );
    assert_eq!(got, expected, "verdicts\n{side_by_side}\n{report:#}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["exit_code"], 2);
    // A confirmed process says what leaks, how fast, how well the line fits.
    let node1 = report["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["process"] == "checkout (node-1)"))
        .expect("node-1");
    assert!(node1["leading_metric"].is_string(), "{node1:#}");
    assert!(
        node1["growth_bytes_per_hour"].as_f64().unwrap_or(0.0) > 0.0,
        "{node1:#}"
    );
    assert!(
        node1["r_squared"].as_f64().unwrap_or(0.0) > 0.0,
        "{node1:#}"
    );
    assert!(node1["since"].is_string(), "{node1:#}");
    // target_info's attributes reached the resource (and the namespace went into job).
    assert_eq!(node1["service_name"], "checkout");

    // The table, and a selector narrowing it to one job.
    let mut args = vec![
        "analyze",
        "--prometheus",
        url.as_str(),
        "--selector",
        r#"{job="shop/cart"}"#,
    ];
    args.extend(window);
    let out = leakwatch(&args);
    let table = String::from_utf8_lossy(&out.stdout);
    eprintln!("leakwatch analyze --selector '{{job=\"shop/cart\"}}':\n{table}");
    assert_eq!(out.status.code(), Some(2), "{table}");
    assert!(table.starts_with("PROCESS"), "{table}");
    assert!(
        table.contains("cart (node-3)") && table.contains("cart (node-4)"),
        "{table}"
    );
    assert!(!table.contains("checkout"), "{table}");
    assert!(
        table.contains("2 processes: 1 confirmed, 0 suspected, 1 ok"),
        "{table}"
    );

    // Only healthy processes: exit 0.
    let mut args = vec![
        "analyze",
        "--prometheus",
        url.as_str(),
        "--selector",
        r#"{instance=~"node-2|py-2|node-6"}"#,
    ];
    args.extend(window);
    let out = leakwatch(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A selector that matches nothing: 66, naming the metric names looked for.
    let mut args = vec![
        "analyze",
        "--prometheus",
        url.as_str(),
        "--selector",
        r#"{job="nope"}"#,
    ];
    args.extend(window);
    let out = leakwatch(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{err}");
    for name in [
        "v8js_memory_heap_used_bytes",
        "v8js_memory_heap_used",
        "process_runtime_nodejs_memory_heap_used",
        "process_runtime_nodejs_gc_count_total",
        "http_requests_total",
        "cpython_gc_collections_total",
    ] {
        assert!(
            err.contains(&format!("\n  {name}\n")),
            "{name} not named:\n{err}"
        );
    }

    // A selector Prometheus refuses: a usage error.
    let out = leakwatch(&[
        "analyze",
        "--prometheus",
        &url,
        "--since",
        "1h",
        "--selector",
        "{job=}",
    ]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The guide's script on the same Prometheus, one process at a time.
    seed_script_side_by_side(&url, &traces, &got);
}

/// Runs `tools/practice/seed_detect.py` per process, as printed (its "now()-24h" times) and
/// with numeric times, and records both verdicts next to leakwatch's.
fn seed_script_side_by_side(url: &str, traces: &[Trace], leakwatch: &BTreeMap<String, String>) {
    let python = std::env::var_os("LEAKWATCH_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".test-env/venv/bin/python"));
    let usable = python.is_file()
        && Command::new(&python)
            .args(["-c", "import numpy, requests"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !usable {
        if in_ci() {
            panic!(
                "{} cannot import numpy and requests (CI=true): run scripts/setup-test-env.sh",
                python.display()
            );
        }
        eprintln!(
            "SKIPPED the guide's script: {} lacks numpy/requests; run scripts/setup-test-env.sh",
            python.display()
        );
        return;
    }
    let script = repo_root().join("tools/practice/seed_detect.py");
    let run = |tr: &Trace, fix_time: bool| {
        let out = Command::new(&python)
            .arg(&script)
            .env("PROMETHEUS_URL", url)
            .env("SEED_SELECTOR", tr.selector())
            .env("SEED_FIX_TIME", if fix_time { "1" } else { "0" })
            .output()
            .expect("run the guide's script");
        let verdict = match out.status.code() {
            Some(0) => "ok",
            Some(1) => "leak",
            _ => panic!(
                "the guide's script failed for {}: {}\n{}",
                tr.process(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        };
        (verdict, String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut table = String::from(
        "| process | runtime | names | trace | truth | guide's script, as printed | guide's script, numeric times | leakwatch analyze |\n|---|---|---|---|---|---|---|---|\n",
    );
    for tr in traces {
        let (as_printed, _) = run(tr, false);
        let (fixed, log) = run(tr, true);
        let indicators: Vec<&str> = log
            .lines()
            .filter(|l| l.trim_start().starts_with("[LEAK]"))
            .filter_map(|l| l.split(':').next())
            .map(|l| l.trim().trim_start_matches("[LEAK]").trim())
            .collect();
        let fixed = if indicators.is_empty() {
            fixed.to_owned()
        } else {
            format!("{fixed} ({})", indicators.join(", "))
        };
        let pattern = match tr.pattern {
            Pattern::Leak {
                mib_per_hour,
                onset_h,
            } if onset_h > 0.0 => format!("leak {mib_per_hour} MiB/h from hour {onset_h}"),
            Pattern::Leak { mib_per_hour, .. } => format!("leak {mib_per_hour} MiB/h"),
            p => format!("{p:?}"),
        };
        table.push_str(&format!(
            "| {} | {:?} | {:?} | {pattern} | {} | {as_printed} | {fixed} | {} |\n",
            tr.process(),
            tr.runtime,
            tr.naming,
            if tr.expect == "ok" { "healthy" } else { "leak" },
            leakwatch
                .get(&tr.process())
                .map(String::as_str)
                .unwrap_or("-"),
        ));
    }
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("analyze-side-by-side.md");
    let _ = std::fs::write(&path, &table);
    eprintln!(
        "the guide's script vs leakwatch analyze ({}):\n{table}",
        path.display()
    );
}

// ---------------------------------------------------------------- the fleet bench, small

/// `LEAKWATCH_BENCH_PROCESSES` processes (default 2: half leaking, half healthy, the guide's
/// names) over 48 h at 15 s, analysed with the defaults (`--since 48h`, `--step 15s`: two
/// `query_range` chunks per process). `scripts/bench-analyze.sh` runs it with 100 on a release
/// build and prints the figure.
#[test]
fn a_48h_fleet_is_analysed_in_seconds() {
    let Some(tools) = tools("a_48h_fleet_is_analysed_in_seconds") else {
        return;
    };
    let n: u64 = std::env::var("LEAKWATCH_BENCH_PROCESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let traces: Vec<Trace> = (0..n)
        .map(|i| {
            let leaking = i % 2 == 0;
            Trace::new(
                "fleet",
                &format!("fleet-{i:03}"),
                Runtime::Node,
                Naming::Guide,
                if leaking {
                    Pattern::Leak {
                        mib_per_hour: 3.0 + (i % 5) as f64,
                        onset_h: 0.0,
                    }
                } else {
                    Pattern::Sawtooth
                },
                1000 + i,
                if leaking { "confirmed" } else { "ok" },
            )
        })
        .collect();
    let end_s = now_s() / 15 * 15;
    let start_s = end_s - 48 * 3600;
    let prom = Prometheus::start(&tools, "fleet", &traces, start_s, 48.0, 15);
    let url = prom.url();
    let t0 = Instant::now();
    let out = leakwatch(&[
        "analyze",
        "--prometheus",
        &url,
        "--since",
        "48h",
        "--format",
        "json",
    ]);
    let elapsed = t0.elapsed();
    let report = report_of(&out);
    let got = verdicts(&report);
    let expected: BTreeMap<String, String> = traces
        .iter()
        .map(|t| (t.process(), t.expect.to_owned()))
        .collect();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "BENCH leakwatch analyze: {n} processes x 48 h at 15 s ({} samples pulled) in {:.2} s ({profile} build)",
        n * 4 * (48 * 240 + 1),
        elapsed.as_secs_f64()
    );
    assert_eq!(got, expected, "{report:#}");
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------- the file exporter

/// One Collector file-exporter line: one export of a Node process's runtime metrics.
fn otlp_json_line(tr: &Trace, s: &Step, start_ns: u64) -> String {
    let t_ns = s.t_s as u64 * 1_000_000_000;
    let number = |attrs: &str, v: f64| {
        format!(
            r#"{{"attributes":[{attrs}],"startTimeUnixNano":"{start_ns}","timeUnixNano":"{t_ns}","asDouble":{v:.0}}}"#
        )
    };
    let attr = |k: &str, v: &str| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#);
    let histogram = |attrs: &str, count: f64| {
        format!(
            r#"{{"attributes":[{attrs}],"startTimeUnixNano":"{start_ns}","timeUnixNano":"{t_ns}","count":"{count:.0}","sum":{:.3},"bucketCounts":["{count:.0}"],"explicitBounds":[]}}"#,
            count * 0.01
        )
    };
    let heap = format!(
        r#"{{"name":"v8js.memory.heap.used","unit":"By","sum":{{"aggregationTemporality":2,"isMonotonic":false,"dataPoints":[{},{}]}}}}"#,
        number(&attr("v8js.heap.space.name", "old_space"), s.heap_old),
        number(&attr("v8js.heap.space.name", "new_space"), s.heap_new)
    );
    let gc = format!(
        r#"{{"name":"v8js.gc.duration","unit":"s","histogram":{{"aggregationTemporality":2,"dataPoints":[{},{}]}}}}"#,
        histogram(&attr("v8js.gc.type", "major"), s.gc_major),
        histogram(&attr("v8js.gc.type", "minor"), s.gc_minor)
    );
    let rss = format!(
        r#"{{"name":"process.memory.usage","unit":"By","sum":{{"aggregationTemporality":2,"isMonotonic":false,"dataPoints":[{}]}}}}"#,
        number("", s.rss)
    );
    let http = format!(
        r#"{{"name":"http.server.request.duration","unit":"s","histogram":{{"aggregationTemporality":2,"dataPoints":[{}]}}}}"#,
        histogram(&attr("http.route", "/api/items/{id}"), s.requests)
    );
    format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{},{}]}},"scopeMetrics":[{{"scope":{{"name":"@opentelemetry/instrumentation-runtime-node"}},"metrics":[{heap},{gc},{rss}]}},{{"scope":{{"name":"@opentelemetry/instrumentation-http"}},"metrics":[{http}]}}]}}]}}"#,
        attr("service.name", &tr.job),
        attr("service.instance.id", &tr.instance)
    )
}

#[test]
fn a_file_exporter_file_is_judged_like_live_exports() {
    let traces = [
        Trace::new(
            "orders",
            "o-1",
            Runtime::Node,
            Naming::Suffixed,
            Pattern::Leak {
                mib_per_hour: 4.5,
                onset_h: 0.0,
            },
            21,
            "confirmed",
        ),
        Trace::new(
            "orders",
            "o-2",
            Runtime::Node,
            Naming::Suffixed,
            Pattern::Sawtooth,
            22,
            "ok",
        ),
    ];
    let dir = temp_dir("file");
    let path = dir.join("export.jsonl");
    let start_s = 1_790_000_000;
    let runs: Vec<Vec<Step>> = traces
        .iter()
        .map(|t| simulate(t, start_s, 40.0, 60))
        .collect();
    {
        let mut w = BufWriter::new(std::fs::File::create(&path).expect("create"));
        for k in 0..runs[0].len() {
            for (tr, steps) in traces.iter().zip(&runs) {
                let line = otlp_json_line(tr, &steps[k], start_s as u64 * 1_000_000_000);
                writeln!(w, "{line}").expect("write");
            }
            // The file exporter writes traces and logs to the same file when asked to.
            if k % 100 == 0 {
                writeln!(w, r#"{{"resourceSpans":[]}}"#).expect("write");
            }
        }
        w.flush().expect("flush");
    }
    let file = path.to_string_lossy().into_owned();
    let out = leakwatch(&["analyze", "--file", &file, "--format", "json"]);
    let report = report_of(&out);
    let expected: BTreeMap<String, String> = traces
        .iter()
        .map(|t| (t.process(), t.expect.to_owned()))
        .collect();
    assert_eq!(verdicts(&report), expected, "{report:#}");
    assert_eq!(out.status.code(), Some(2));

    // A malformed line: 65, naming the line.
    let bad = dir.join("bad.jsonl");
    let first = std::fs::read_to_string(&path)
        .expect("read")
        .lines()
        .next()
        .map(str::to_owned)
        .expect("a line");
    std::fs::write(&bad, format!("{first}\n{{\"resourceMetrics\": [\n")).expect("write");
    let out = leakwatch(&["analyze", "--file", &bad.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("bad.jsonl:2:"), "{err}");

    // A file without any metric of the catalog: 66; a missing file: 66.
    let empty = dir.join("spans.jsonl");
    std::fs::write(&empty, "{\"resourceSpans\":[]}\n").expect("write");
    let out = leakwatch(&["analyze", "--file", &empty.to_string_lossy()]);
    assert_eq!(
        out.status.code(),
        Some(66),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = leakwatch(&["analyze", "--file", &dir.join("missing").to_string_lossy()]);
    assert_eq!(
        out.status.code(),
        Some(66),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- errors

#[test]
fn an_unreachable_prometheus_exits_69() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = leakwatch(&["analyze", "--prometheus", &url, "--since", "1h"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("cannot reach Prometheus at"), "{err}");
}

#[test]
fn refused_credentials_exit_69_and_headers_are_passed_through() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen_by_server = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            if let Ok(mut s) = seen_by_server.lock() {
                s.push_str(&String::from_utf8_lossy(&got));
            }
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let out = leakwatch(&[
        "analyze",
        "--prometheus",
        &url,
        "--since",
        "1h",
        "--header",
        "Authorization: Bearer s3cret",
        "--header",
        "X-Scope-OrgID: tenant-1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("refused the credentials (HTTP 401)"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let request = seen.lock().map(|s| s.to_lowercase()).unwrap_or_default();
    assert!(
        request.contains("authorization: bearer s3cret"),
        "{request}"
    );
    assert!(request.contains("x-scope-orgid: tenant-1"), "{request}");
    assert!(request.starts_with("post /api/v1/series"), "{request}");
}

#[test]
fn usage_errors_exit_64_not_2() {
    for args in [
        vec!["analyze"],
        vec![
            "analyze",
            "--prometheus",
            "http://x:9090",
            "--file",
            "f.jsonl",
        ],
        vec![
            "analyze",
            "--prometheus",
            "http://x:9090",
            "--start",
            "2026-12-01T00:00:00Z",
        ],
        vec!["analyze", "--prometheus", "http://x:9090", "--bogus"],
        vec![
            "analyze",
            "--prometheus",
            "http://x:9090",
            "--format",
            "xml",
        ],
        vec![
            "analyze",
            "--prometheus",
            "http://x:9090",
            "--selector",
            "up{job=\"a\"}",
        ],
        vec![
            "analyze",
            "--prometheus",
            "http://x:9090",
            "--header",
            "no colon",
        ],
        vec!["analyze", "--prometheus", "ftp://x"],
        vec!["--no-such-flag"],
    ] {
        let out = leakwatch(&args);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = leakwatch(&["analyze", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--prometheus",
        "--file",
        "--since",
        "--start",
        "--end",
        "--step",
        "--selector",
        "--config",
        "--format",
        "--header",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    assert!(help.contains("Exit codes: 0 no leak"), "{help}");
}
