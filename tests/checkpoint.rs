//! Detector checkpoints (`checkpoint:`): the state restored from a checkpoint continues
//! exactly where it stopped (event time makes that checkable to the bit), a bad checkpoint is
//! reported and skipped, and the binary keeps its series and trends across a SIGTERM restart.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::procs::{http_get, Leakwatch};
use common::*;
use leakwatch::catalog::{Catalog, LimitConfig};
use leakwatch::checkpoint::{self, CheckpointError, Checkpointer};
use leakwatch::detector::{DetectorConfig, LeakEvent, LeakEventKind, LimitSource, Resolution};
use leakwatch::engine::{Engine, EngineConfig};
use leakwatch::ops::telemetry::{CheckpointRestore, Telemetry};
use leakwatch::otlp::proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use leakwatch::otlp::proto::paths;
use prost::Message;

const S: u64 = 1_000_000_000;
/// 2023-11-14T22:13:20Z: realistic event times.
const T0: u64 = 1_700_000_000 * S;
const STEPS: u64 = 480;

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "leakwatch-checkpoint-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("mkdir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Windows of a minute and two, so a whole leak lifecycle fits in 8 minutes of event time.
fn detector() -> DetectorConfig {
    DetectorConfig::with_windows(Duration::from_secs(60), Duration::from_secs(120))
}

fn engine() -> Engine {
    Engine::new(
        EngineConfig {
            detector: detector(),
            ..EngineConfig::default()
        },
        Arc::new(Telemetry::new()),
    )
}

/// Second `step` of a Node.js service whose heap floor grows 400 KB/s for four minutes and
/// then levels off (a GC sawtooth on top, GC and request counters beside it, a heap limit),
/// and of a healthy one.
fn trace(step: u64) -> Bytes {
    trace_from(T0, step)
}

/// [`trace`] starting at `t0` (ns since the epoch).
fn trace_from(t0: u64, step: u64) -> Bytes {
    let t = t0 + step * S;
    let saw = (step % 10) as f64 * 2e6;
    let floor = 100e6 + 400e3 * step.min(240) as f64;
    let leaky = request(
        resource("checkout", "pod-1"),
        vec![
            gauge_metric(
                "v8js.memory.heap.used",
                "By",
                vec![number_point(t, floor + saw, vec![])],
            ),
            gauge_metric(
                "v8js.memory.heap.limit",
                "By",
                vec![number_point(t, 1.5e9, vec![])],
            ),
            counter(
                "process.runtime.nodejs.gc.count",
                t0 - 10 * S,
                t,
                (step / 10) as f64,
            ),
            counter("http.server.requests", t0 - 10 * S, t, (step * 10) as f64),
        ],
    );
    let healthy = request(
        resource("catalog", "pod-2"),
        vec![gauge_metric(
            "v8js.memory.heap.used",
            "By",
            vec![number_point(t, 80e6 + saw, vec![])],
        )],
    );
    let mut both = ExportMetricsServiceRequest::default();
    both.resource_metrics.extend(leaky.resource_metrics);
    both.resource_metrics.extend(healthy.resource_metrics);
    Bytes::from(both.encode_to_vec())
}

/// The events of ingesting `steps` into `engine`, with the service they are about.
fn run(engine: &Engine, steps: std::ops::Range<u64>) -> Vec<(String, LeakEvent)> {
    let mut events = Vec::new();
    for step in steps {
        let outcome = engine.ingest_metrics(trace(step)).expect("valid request");
        assert!(outcome.rejected.is_empty());
        events.extend(
            outcome
                .events
                .into_iter()
                .map(|e| (e.resource.service_name.clone(), e.event)),
        );
    }
    events
}

fn kinds(events: &[(String, LeakEvent)]) -> Vec<(String, LeakEventKind, u64)> {
    events
        .iter()
        .map(|(s, e)| (s.clone(), e.kind, (e.t_ns - T0) / S))
        .collect()
}

#[test]
fn a_restored_checkpoint_continues_exactly_like_an_uninterrupted_run() {
    let whole = run(&engine(), 0..STEPS);
    let k = kinds(&whole);
    assert!(
        k.iter()
            .any(|(s, kind, _)| s == "checkout" && *kind == LeakEventKind::Confirmed)
            && k.iter()
                .any(|(s, kind, _)| s == "checkout" && *kind == LeakEventKind::Resolved),
        "the trace should open and close an incident: {k:?}"
    );
    assert!(k.iter().all(|(s, _, _)| s == "checkout"), "{k:?}");

    for split in [90, 200, 300] {
        let first = engine();
        let mut events = run(&first, 0..split);
        let snapshot = first.snapshot();
        // Through the file format, as a restart would.
        let bytes = checkpoint::encode(&snapshot).expect("encode");
        let restored = engine();
        let report = restored
            .restore(checkpoint::decode(&bytes).expect("decode"))
            .expect("restore");
        assert_eq!((report.series, report.resources), (5, 2), "split {split}");
        assert_eq!(restored.watermark_ns(), first.watermark_ns());
        events.extend(run(&restored, split..STEPS));
        assert_eq!(
            events, whole,
            "split at {split}: events differ from an uninterrupted run"
        );
        // The same views as the engine it was taken from, too.
        let views = |e: &Engine| {
            let mut v = serde_json::to_value(e.series_views(None)).expect("json");
            if let Some(a) = v.as_array_mut() {
                a.sort_by_key(|x| x["key"].to_string());
            }
            v
        };
        let continued = engine();
        continued
            .restore(checkpoint::decode(&bytes).expect("decode"))
            .expect("restore");
        assert_eq!(views(&continued), views(&first), "split {split}");
    }

    // The check has teeth: starting empty at the split loses (or delays) events.
    let first = engine();
    let mut events = run(&first, 0..200);
    events.extend(run(&engine(), 200..STEPS));
    assert_ne!(kinds(&events), k, "an empty restart should differ");
}

#[test]
fn the_chart_history_survives_a_checkpoint_and_older_checkpoints_still_load() {
    let first = engine();
    run(&first, 0..200);
    let snapshot = first.snapshot();
    assert_eq!(snapshot.resources.len(), 2);
    assert!(snapshot.resources.iter().all(|r| r.history.is_some()));
    // Only the leaking service reports requests and collections.
    assert_eq!(
        snapshot
            .resources
            .iter()
            .filter(|r| r.counters.is_some())
            .count(),
        1
    );
    let chart = |e: &Engine, key: u64| {
        serde_json::to_value(e.resource_history(key).expect("a resource")).expect("json")
    };
    let restored = engine();
    restored
        .restore(
            checkpoint::decode(&checkpoint::encode(&snapshot).expect("encode")).expect("decode"),
        )
        .expect("restore");
    for r in &snapshot.resources {
        let h = chart(&first, r.key);
        assert!(
            h["buckets"]["t_unix_nano"].as_array().map_or(0, Vec::len) > 100,
            "{h}"
        );
        // The whole read model, the counts and the signals drawn from them included.
        assert_eq!(chart(&restored, r.key), h);
    }
    let counting = snapshot
        .resources
        .iter()
        .find(|r| r.counters.is_some())
        .map(|r| chart(&restored, r.key))
        .expect("the counting process");
    assert!(
        counting["gc_per_minute"]["value"]
            .as_array()
            .is_some_and(|v| v.len() > 20),
        "{counting}"
    );
    assert!(counting["memory_per_request"]["value"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));

    // A checkpoint written before the history existed has no such field (`None` is not
    // written, so this is byte for byte what such a build wrote): it loads, the detection
    // state with it, and the chart starts again from the next point.
    let mut old = snapshot.clone();
    for r in &mut old.resources {
        r.history = None;
        r.counters = None;
    }
    let older = engine();
    let report = older
        .restore(checkpoint::decode(&checkpoint::encode(&old).expect("encode")).expect("decode"))
        .expect("restore");
    assert_eq!((report.series, report.resources), (5, 2));
    let key = snapshot.resources[0].key;
    assert!(chart(&older, key)["buckets"]["t_unix_nano"]
        .as_array()
        .is_some_and(Vec::is_empty));
    let counted = snapshot
        .resources
        .iter()
        .find(|r| r.counters.is_some())
        .map(|r| r.key)
        .expect("the counting process");
    assert!(chart(&older, counted)["counts"]["t_unix_nano"]
        .as_array()
        .is_some_and(Vec::is_empty));
    run(&older, 200..203);
    // The counts start again too (from the next increments: the counters are not reset).
    assert!(chart(&older, counted)["counts"]["t_unix_nano"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(
        chart(&older, key)["buckets"]["t_unix_nano"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

#[test]
fn checkpoint_file_is_written_atomically_and_read_back() {
    let dir = TempDir::new("atomic");
    let path = dir.0.join("state.ckpt");
    let e = engine();
    run(&e, 0..100);
    let c = Checkpointer::new(path.clone(), Arc::new(e));
    let bytes = c.write_now().expect("write");
    assert_eq!(std::fs::metadata(&path).expect("file").len(), bytes);
    assert!(
        !dir.0.join("state.ckpt.tmp").exists(),
        "the temporary file is renamed"
    );
    let per_series = bytes / 5;
    println!("checkpoint: {bytes} bytes for 5 series and 2 resources (~{per_series} B/series)");
    let back = checkpoint::read(&path).expect("read").expect("present");
    assert_eq!(back.series.len(), 5);
    assert!(checkpoint::read(&dir.0.join("missing"))
        .expect("no error")
        .is_none());
}

#[test]
fn checkpoint_size_and_time_are_measured() {
    // 500 processes × 4 V8 heap spaces, 60 points each (every bucket of the ring filled).
    let e = Arc::new(engine());
    for step in 0..60u64 {
        let t = T0 + step * 2 * S;
        let mut all = ExportMetricsServiceRequest::default();
        for p in 0..500 {
            let points = ["new_space", "old_space", "code_space", "large_object_space"]
                .iter()
                .enumerate()
                .map(|(i, space)| {
                    number_point(
                        t,
                        50e6 + (i as f64) * 1e6 + step as f64 * 1e4 + (p as f64),
                        vec![kv("v8js.heap.space.name", space)],
                    )
                })
                .collect();
            let r = request(
                resource("svc", &format!("pod-{p}")),
                vec![gauge_metric("v8js.memory.heap.used", "By", points)],
            );
            all.resource_metrics.extend(r.resource_metrics);
        }
        e.ingest_metrics(Bytes::from(all.encode_to_vec()))
            .expect("valid");
    }
    assert_eq!(e.series_count(), 2000);
    let dir = TempDir::new("size");
    let c = Checkpointer::new(dir.0.join("size.ckpt"), Arc::clone(&e));
    let started = Instant::now();
    let bytes = c.write_now().expect("write");
    let write = started.elapsed();
    let started = Instant::now();
    let fresh = Arc::new(engine());
    let report = Checkpointer::new(dir.0.join("size.ckpt"), Arc::clone(&fresh))
        .restore()
        .expect("restore");
    let restore = started.elapsed();
    assert_eq!((report.series, report.resources), (2000, 500));
    let per_series = bytes / 2000;
    println!(
        "checkpoint of 2000 series / 500 resources: {bytes} bytes (~{per_series} B per series \
         with its share of the resource), written in {write:?}, restored in {restore:?}"
    );
    assert!(per_series < 2048, "{per_series} B per series");
}

/// Restores `data` as a checkpoint file into a fresh engine; returns the error and the engine.
fn restore_file(dir: &TempDir, data: &[u8]) -> (Result<(), CheckpointError>, Arc<Engine>) {
    let path = dir.0.join("bad.ckpt");
    std::fs::write(&path, data).expect("write");
    let e = Arc::new(engine());
    let r = Checkpointer::new(path, Arc::clone(&e))
        .restore()
        .map(|_| ());
    (r, e)
}

#[test]
fn a_bad_checkpoint_is_reported_and_skipped_never_a_panic() {
    let dir = TempDir::new("bad");
    let e = engine();
    run(&e, 0..100);
    let good = checkpoint::encode(&e.snapshot()).expect("encode");

    let mut wrong_version = good.clone();
    wrong_version[8..12].copy_from_slice(&0u32.to_le_bytes());
    // Version 2 held the detector state before it was shrunk to 352 bytes (another shape).
    let mut version_2 = good.clone();
    version_2[8..12].copy_from_slice(&2u32.to_le_bytes());
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x10;
    let mut bad_length = good.clone();
    bad_length[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, CheckpointRestore)> = vec![
        ("empty", Vec::new(), CheckpointRestore::Corrupt),
        (
            "garbage",
            b"definitely not a checkpoint".repeat(10),
            CheckpointRestore::Corrupt,
        ),
        (
            "header only",
            good[..20].to_vec(),
            CheckpointRestore::Corrupt,
        ),
        (
            "truncated",
            good[..good.len() - 100].to_vec(),
            CheckpointRestore::Corrupt,
        ),
        ("bit flip", flipped, CheckpointRestore::Corrupt),
        ("absurd length", bad_length, CheckpointRestore::Corrupt),
        ("old version", wrong_version, CheckpointRestore::Version),
        ("version 2", version_2, CheckpointRestore::Version),
    ];
    for (name, data, outcome) in cases {
        let (result, engine) = restore_file(&dir, &data);
        let err = result.expect_err(name);
        assert_eq!(err.outcome(), outcome, "{name}: {err}");
        assert_eq!(
            engine.telemetry().checkpoint_restores(outcome),
            1,
            "{name}: counted"
        );
        assert_eq!(
            (engine.series_count(), engine.resource_count()),
            (0, 0),
            "{name}: starts empty"
        );
    }

    // A checkpoint from other detector windows is refused as a whole.
    let path = dir.0.join("other-windows.ckpt");
    std::fs::write(&path, &good).expect("write");
    let other = Arc::new(Engine::new(
        EngineConfig {
            detector: DetectorConfig::with_windows(
                Duration::from_secs(3600),
                Duration::from_secs(7200),
            ),
            ..EngineConfig::default()
        },
        Arc::new(Telemetry::new()),
    ));
    let err = Checkpointer::new(path, Arc::clone(&other))
        .restore()
        .expect_err("other windows");
    assert_eq!(err.outcome(), CheckpointRestore::Incompatible, "{err}");
    assert_eq!(other.series_count(), 0);

    // A directory where the file should be: unreadable, reported, skipped.
    let (result, _) = {
        let path = dir.0.join("a-directory");
        std::fs::create_dir_all(&path).expect("mkdir");
        let e = Arc::new(engine());
        (Checkpointer::new(path, Arc::clone(&e)).restore(), e)
    };
    assert_eq!(
        result.expect_err("unreadable").outcome(),
        CheckpointRestore::Unreadable
    );

    // Random bytes behind a valid header and checksum never panic the decoder.
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for len in [0usize, 1, 7, 64, 513] {
        let body: Vec<u8> = (0..len)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        let mut data = good[..checkpoint::HEADER_BYTES].to_vec();
        data[16..24].copy_from_slice(&(len as u64).to_le_bytes());
        data[24..28].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
        data.extend_from_slice(&body);
        assert!(checkpoint::decode(&data).is_err(), "{len} random bytes");
    }
}

fn checkpoint_yaml(path: &std::path::Path, interval: &str) -> String {
    format!(
        "detector:\n  short_window: 60s\n  long_window: 120s\nevents:\n  derived_metrics: false\ncheckpoint:\n  path: {}\n  interval: {interval}\nshutdown:\n  grace_period: 5s\n",
        path.display()
    )
}

async fn start_binary(downstream: &Downstream, yaml: &str) -> Leakwatch {
    let endpoint = downstream.endpoint();
    let yaml = yaml.to_owned();
    tokio::task::spawn_blocking(move || Leakwatch::start(&endpoint, &yaml))
        .await
        .expect("start leakwatch")
}

/// `/api/v1/series` items of the trace's two services (not leakwatch's own), sorted by key.
fn series_of(admin: u16) -> Vec<serde_json::Value> {
    let (status, body) = http_get(admin, "/api/v1/series");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut items: Vec<serde_json::Value> = v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|x| matches!(x["service_name"].as_str(), Some("checkout" | "catalog")))
        .collect();
    items.sort_by_key(|x| x["key"].to_string());
    items
}

fn metric_value(admin: u16, line_prefix: &str) -> Option<u64> {
    let (_, metrics) = http_get(admin, "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_and_trends_survive_a_sigterm_restart_of_the_binary() {
    let dir = TempDir::new("e2e");
    let path = dir.0.join("leakwatch.ckpt");
    let downstream = Downstream::start().await;
    let yaml = checkpoint_yaml(&path, "1h");
    // Event times of the last few minutes, as live data would have (leakwatch may watch
    // itself in wall-clock event time, which would make older data idle).
    let t0 = now_ns() - 300 * S;
    let mut lw = start_binary(&downstream, &yaml).await;
    for step in 0..200 {
        grpc_raw(
            &lw.grpc_endpoint(),
            paths::METRICS,
            trace_from(t0, step),
            None,
            None,
        )
        .await
        .expect("accepted");
    }
    let before = series_of(lw.admin);
    assert_eq!(before.len(), 5, "{before:?}");
    assert!(
        before.iter().any(|s| s["trend"]["long"]["slope_per_hour"]
            .as_f64()
            .is_some_and(|v| v > 1e9)),
        "a trend was measured: {before:?}"
    );
    let (status, in_time) = tokio::task::spawn_blocking(move || {
        let r = lw.proc.terminate(Duration::from_secs(20));
        drop(lw);
        r
    })
    .await
    .expect("join");
    assert!(status.success() && in_time, "{status:?}");
    assert!(path.exists(), "written at shutdown");

    let lw = start_binary(&downstream, &yaml).await;
    let after = series_of(lw.admin);
    assert_eq!(
        after, before,
        "the same series with the same trends after the restart"
    );
    assert_eq!(
        metric_value(
            lw.admin,
            "leakwatch_checkpoint_restores_total{outcome=\"restored\"} "
        ),
        Some(1)
    );
    // And detection goes on from there.
    for step in 200..260 {
        grpc_raw(
            &lw.grpc_endpoint(),
            paths::METRICS,
            trace_from(t0, step),
            None,
            None,
        )
        .await
        .expect("accepted");
    }
    let (_, leaks) = lw.admin_get("/api/v1/leaks");
    assert!(leaks.contains("checkout"), "{leaks}");
    drop(lw);
    downstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_writes_periodically_and_starts_empty_on_a_corrupt_checkpoint() {
    let dir = TempDir::new("e2e-bad");
    let path = dir.0.join("leakwatch.ckpt");
    std::fs::write(&path, b"not a checkpoint at all").expect("write");
    let downstream = Downstream::start().await;
    let mut lw = start_binary(&downstream, &checkpoint_yaml(&path, "200ms")).await;
    assert_eq!(
        metric_value(
            lw.admin,
            "leakwatch_checkpoint_restores_total{outcome=\"corrupt\"} "
        ),
        Some(1)
    );
    assert!(series_of(lw.admin).is_empty());
    grpc_raw(
        &lw.grpc_endpoint(),
        paths::METRICS,
        trace_from(now_ns(), 0),
        None,
        None,
    )
    .await
    .expect("accepted");
    // The periodic write replaces the corrupt file with a good one.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(s)) = checkpoint::read(&path) {
            if !s.series.is_empty() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no periodic checkpoint written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stderr = lw.proc.stderr();
    assert!(
        stderr.contains("Checkpoint skipped"),
        "a warning with the reason: {stderr}"
    );
    lw.proc.kill();
    downstream.stop().await;
}

#[test]
fn a_process_that_stops_reporting_ends_its_incident_as_process_gone() {
    let idle = Duration::from_secs(30);
    let engine = Engine::new(
        EngineConfig {
            detector: detector(),
            idle_timeout: idle,
            ..EngineConfig::default()
        },
        Arc::new(Telemetry::new()),
    );
    // Until checkout's leak is confirmed.
    let mut step = 0;
    let confirmed = loop {
        assert!(step < STEPS, "the leak was never confirmed");
        let events = engine.ingest_metrics(trace(step)).expect("valid").events;
        step += 1;
        if events
            .iter()
            .any(|e| e.event.kind == LeakEventKind::Confirmed)
        {
            break step - 1;
        }
    };
    let last_checkout_ns = T0 + confirmed * S;
    // Then only the healthy service reports, for twice the idle timeout of event time.
    let mut gone = Vec::new();
    for later in 1..=60 {
        let t = last_checkout_ns + later * S;
        let healthy = request(
            resource("catalog", "pod-2"),
            vec![gauge_metric(
                "v8js.memory.heap.used",
                "By",
                vec![number_point(t, 80e6, vec![])],
            )],
        );
        engine
            .ingest_metrics(Bytes::from(healthy.encode_to_vec()))
            .expect("valid");
        gone.extend(engine.evict_idle().events);
    }
    let ended: Vec<_> = gone
        .iter()
        .map(|e| {
            (
                e.resource.service_name.as_str(),
                e.event.kind,
                e.event.resolution,
                e.event.t_ns,
            )
        })
        .collect();
    assert_eq!(
        ended,
        vec![(
            "checkout",
            LeakEventKind::Resolved,
            Some(Resolution::ProcessGone),
            last_checkout_ns + idle.as_nanos() as u64
        )],
        "exactly one incident ends, checkout's, when the idle timeout has passed in event time"
    );
    assert!(
        gone[0].event.signals.contains(&"memory"),
        "{:?}",
        gone[0].event
    );
}

#[test]
fn a_configured_limit_gives_the_forecast_and_its_source() {
    let confirmed = |limits: Vec<LimitConfig>| {
        let engine = Engine::new(
            EngineConfig {
                detector: detector(),
                catalog: Catalog::builtin().with_limits(limits),
                ..EngineConfig::default()
            },
            Arc::new(Telemetry::new()),
        );
        run(&engine, 0..STEPS)
            .into_iter()
            .find(|(s, e)| s == "checkout" && e.kind == LeakEventKind::Confirmed)
            .map(|(_, e)| e)
            .expect("checkout's leak is confirmed")
    };
    // v8js.memory.heap.limit is committed heap, not a limit: no forecast of its own.
    let plain = confirmed(Vec::new());
    assert_eq!(
        (plain.limit_bytes, plain.limit_source),
        (None, None),
        "{plain:?}"
    );
    let limit = |service: &str, bytes: u64| LimitConfig {
        matches: [("service.name".to_owned(), service.to_owned())].into(),
        limit_bytes: bytes,
    };
    // The first entry whose attributes all match applies; others are ignored.
    let with = confirmed(vec![
        limit("catalog", 100_000_000),
        limit("checkout", 400_000_000),
    ]);
    assert_eq!(with.limit_bytes, Some(400e6), "{with:?}");
    assert_eq!(with.limit_source, Some(LimitSource::Configured));
    assert!(
        with.time_to_limit_seconds.is_some_and(|t| t > 0.0),
        "{with:?}"
    );
}
